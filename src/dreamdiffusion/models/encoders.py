"""The field's EEG encoders, for contrastive EEG-CLIP alignment (the modern recipe).

Every backbone maps an EEG window ``[B, n_chans, n_times]`` to a feature vector ``[B, F]`` and takes
braindecode's arguments (``n_chans``, ``n_times``, ``sfreq``; kernel sizes given in samples at the
paper's rate are rescaled to ``sfreq``):

- ``msm``: the paper's masked-signal-modeling transformer (:class:`~dreamdiffusion.models.eeg_encoder.EEGEncoder`)
  with DreamDiffusion's CLIP-head pooling (a learned mixture over its tokens);
- ``shallow``: ShallowFBCSPNet (Schirrmeister et al. 2017, Hum. Brain Mapp. 38:5391): temporal conv,
  spatial conv, square, average pool, log;
- ``eegnet``: EEGNet-4,2 (Lawhern et al. 2018, J. Neural Eng. 15:056013): temporal conv, depthwise
  spatial conv, separable conv;
- ``conformer``: EEGConformer (Song et al. 2023, IEEE TNSRE 31:710): ShallowNet-style patch embedding
  followed by a transformer encoder over the patches;
- ``atcnet``: ATCNet (Altaheri, Muhammad, Alsulaiman 2023, IEEE TII 19:2249): an EEGNet-like convolutional
  block, then sliding windows over its output sequence, each through multi-head self-attention and a
  temporal convolutional network (TCN);
- ``linear``: UBP's encoder (Wu et al., CVPR 2025): the window flattened; with the projector below this is
  their two-layer ``EEGProject``.

Each backbone also gives a token sequence ``tokens(x) -> [B, N, D]`` (its feature map over time: the
conv nets' pooled time steps, the conformer's patches, ATCNet's windows, the MSM transformer's tokens,
the linear encoder's channels), which the paper's conditioner maps into the UNet's cross-attention
(:class:`TokenEncoder`, ``finetune --encoder-arch``); ``forward`` is that sequence flattened or pooled.

Why written here rather than imported from braindecode: braindecode 1.8 imports ``torchaudio`` at the top
of ``braindecode.models`` (through ``braindecode.modules.filter``), and no torchaudio build matches the
project's pinned CPU torch; the layers above follow the papers (and braindecode's defaults) instead.

:class:`AlignedEncoder` = optional channel pick and time pooling of the input (recorded in its config, so
it takes the dataset's standard window) -> backbone -> projector to the CLIP image-embedding width, plus
the learnable InfoNCE temperature. Pure model file: no training loop, no data reading beyond save/load.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from dreamdiffusion.core.config import check_model_folder, read_json_config
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models.eeg_encoder import ENCODER_KEYS, PRESETS, EEGEncoder

ARCHS = ("msm", "shallow", "eegnet", "conformer", "atcnet", "linear")
ALIGNED_CONFIG_NAME = "AlignedEncoder"


def _scaled(samples_at_ref: int, sfreq: float, ref: float, n_times: int) -> int:
    """A kernel of ``samples_at_ref`` samples at rate ``ref``, in samples at ``sfreq`` (at least 1, fits the window)."""
    return int(max(1, min(n_times, round(samples_at_ref * sfreq / ref))))


class MSMBackbone(nn.Module):
    """The paper's transformer; its tokens ``[B, N, D]`` pooled by a learned 1x1 conv over the token axis."""

    def __init__(self, n_chans: int, n_times: int, sfreq: float, preset: str = "tiny", patch_size: int | None = None):
        super().__init__()
        # The paper's 4-sample tokens where they fit; else the nearest size that tiles the window (250 -> 5).
        patch_size = patch_size or next(p for p in (4, 5, 3, 2, 1) if n_times % p == 0)
        if preset not in PRESETS:
            raise ConfigError(f"unknown encoder preset {preset!r}; choose one of {', '.join(PRESETS)}")
        enc = {k: PRESETS[preset][k] for k in ENCODER_KEYS}
        self.encoder = EEGEncoder(n_chans=n_chans, n_times=n_times, sfreq=sfreq, patch_size=patch_size, **enc)
        self.pool = nn.Conv1d(self.encoder.num_tokens, 1, kernel_size=1)
        self.out_features = enc["embed_dim"]
        self.token_shape = (self.encoder.num_tokens, enc["embed_dim"])

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # [B, N, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.encoder(x)).squeeze(1)  # [B, N, D] -> [B, D]


class ShallowFBCSPNet(nn.Module):
    """ShallowFBCSPNet's feature extractor; kernel 25, pool 75, stride 15 samples at 250 Hz (the paper's)."""

    def __init__(self, n_chans: int, n_times: int, sfreq: float = 250.0, n_filters: int = 40, drop_prob: float = 0.5):
        super().__init__()
        k = _scaled(25, sfreq, 250.0, n_times)
        pool = _scaled(75, sfreq, 250.0, max(1, n_times - k + 1))
        stride = max(1, round(pool / 5))
        self.temporal = nn.Conv2d(1, n_filters, (1, k))
        self.spatial = nn.Conv2d(n_filters, n_filters, (n_chans, 1), bias=False)
        self.bn = nn.BatchNorm2d(n_filters)
        self.pool = nn.AvgPool2d((1, pool), (1, stride))
        self.drop = nn.Dropout(drop_prob)
        n_out = (n_times - k + 1 - pool) // stride + 1
        self.out_features = n_filters * n_out
        self.token_shape = (n_out, n_filters)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.spatial(self.temporal(x.unsqueeze(1))))  # [B, F, 1, T']
        x = torch.log(torch.clamp(self.pool(x * x), min=1e-6))  # band power, log (the FBCSP analogue)
        return self.drop(x).squeeze(2).transpose(1, 2)  # [B, P, F]: one token per pooled step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).transpose(1, 2).flatten(1)  # filter-major, as the saved projectors expect


class EEGNet(nn.Module):
    """EEGNet-F1,D (v4): temporal kernel half a second (64 at 128 Hz), depthwise spatial, separable conv."""

    def __init__(self, n_chans: int, n_times: int, sfreq: float = 128.0, F1: int = 8, D: int = 2, F2: int = 16,
                 drop_prob: float = 0.25):
        super().__init__()
        k = _scaled(64, sfreq, 128.0, n_times)
        p1, p2 = (4, 8) if n_times >= 64 else (2, 2)
        self.block1 = nn.Sequential(
            nn.Conv2d(1, F1, (1, k), padding=(0, k // 2), bias=False), nn.BatchNorm2d(F1),
            nn.Conv2d(F1, F1 * D, (n_chans, 1), groups=F1, bias=False), nn.BatchNorm2d(F1 * D), nn.ELU(),
            nn.AvgPool2d((1, p1)), nn.Dropout(drop_prob))
        k2 = _scaled(16, sfreq, 128.0, max(1, n_times // p1))
        self.block2 = nn.Sequential(
            nn.Conv2d(F1 * D, F1 * D, (1, k2), padding=(0, k2 // 2), groups=F1 * D, bias=False),
            nn.Conv2d(F1 * D, F2, 1, bias=False), nn.BatchNorm2d(F2), nn.ELU(),
            nn.AvgPool2d((1, p2)), nn.Dropout(drop_prob))
        # Sizes by arithmetic, not a dry run: diffusers may build the model with its weights on the meta device.
        n_out = ((n_times + 2 * (k // 2) - k + 1) // p1 + 2 * (k2 // 2) - k2 + 1) // p2
        if n_out < 1:
            raise ConfigError(f"EEGNet's two pools need a longer window than {n_times} samples")
        self.out_features = F2 * n_out
        self.token_shape = (n_out, F2)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x.unsqueeze(1))).squeeze(2).transpose(1, 2)  # [B, T'', F2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).transpose(1, 2).flatten(1)


class EEGConformer(nn.Module):
    """EEGConformer: ShallowNet patch embedding (40 filters) -> transformer over the patches (depth 6, 10 heads)."""

    def __init__(self, n_chans: int, n_times: int, sfreq: float = 250.0, n_filters: int = 40, depth: int = 6,
                 num_heads: int = 10, drop_prob: float = 0.5):
        super().__init__()
        k = _scaled(25, sfreq, 250.0, n_times)
        pool = _scaled(75, sfreq, 250.0, max(1, n_times - k + 1))
        stride = max(1, round(pool / 5))
        self.patch = nn.Sequential(
            nn.Conv2d(1, n_filters, (1, k)), nn.Conv2d(n_filters, n_filters, (n_chans, 1)),
            nn.BatchNorm2d(n_filters), nn.ELU(), nn.AvgPool2d((1, pool), (1, stride)), nn.Dropout(drop_prob),
            nn.Conv2d(n_filters, n_filters, 1))
        layer = nn.TransformerEncoderLayer(n_filters, num_heads, dim_feedforward=4 * n_filters, dropout=drop_prob,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        n_patches = (n_times - k + 1 - pool) // stride + 1
        self.out_features = n_filters * n_patches
        self.token_shape = (n_patches, n_filters)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x.unsqueeze(1)).squeeze(2).transpose(1, 2)  # [B, F, 1, P] -> [B, P, F]
        return self.transformer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).flatten(1)


class _CausalConv(nn.Conv1d):
    """A dilated 1-d conv that sees only the past (left padding of (kernel - 1) x dilation): the TCN's conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int):
        super().__init__(in_channels, out_channels, kernel, dilation=dilation)
        self.left = (kernel - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left, 0)))


class _TCNBlock(nn.Module):
    """Residual TCN block: two causal convs (BatchNorm, ELU, dropout each), the input added back, ELU."""

    def __init__(self, in_dim: int, dim: int, kernel: int, dilation: int, drop_prob: float):
        super().__init__()
        self.skip = nn.Conv1d(in_dim, dim, 1) if in_dim != dim else nn.Identity()
        self.net = nn.Sequential(
            _CausalConv(in_dim, dim, kernel, dilation), nn.BatchNorm1d(dim), nn.ELU(), nn.Dropout(drop_prob),
            _CausalConv(dim, dim, kernel, dilation), nn.BatchNorm1d(dim), nn.ELU(), nn.Dropout(drop_prob))
        self.act = nn.ELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.skip(x) + self.net(x))


class _WindowAttention(nn.Module):
    """Pre-norm multi-head self-attention with its own head width (ATCNet: 2 heads of 8 on 32 features), residual."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, att_drop_prob: float, drop_prob: float):
        super().__init__()
        self.num_heads, self.att_drop_prob = num_heads, att_drop_prob
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * num_heads * head_dim)
        self.out = nn.Linear(num_heads * head_dim, dim)
        self.drop = nn.Dropout(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, dim]
        b, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.att_drop_prob if self.training else 0.0)
        return x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, -1)))


class ATCNet(nn.Module):
    """ATCNet's feature extractor (braindecode's argument names and defaults, which are the paper's).

    Convolutional block (EEGNet-like: temporal conv of 64 samples at 250 Hz, depthwise spatial conv, average
    pool, a second temporal conv, average pool) -> ``n_windows`` sliding windows over the resulting sequence,
    each with its own self-attention and TCN; a window's token is its TCN's last (causal: whole-window) step.
    ``concat`` (default) hands the projector every window's token side by side: the paper's per-window dense
    heads, averaged, are a linear map of exactly that, which the projector's first layer is; ``concat=False``
    averages the tokens instead.
    """

    def __init__(self, n_chans: int, n_times: int, sfreq: float = 250.0, conv_block_n_filters: int = 16,
                 conv_block_kernel_length_1: int = 64, conv_block_kernel_length_2: int = 16,
                 conv_block_pool_size_1: int = 8, conv_block_pool_size_2: int = 7, conv_block_depth_mult: int = 2,
                 conv_block_dropout: float = 0.3, n_windows: int = 5, att_head_dim: int = 8, att_num_heads: int = 2,
                 att_drop_prob: float = 0.5, tcn_depth: int = 2, tcn_kernel_size: int = 4, tcn_n_filters: int = 32,
                 tcn_drop_prob: float = 0.3, concat: bool = True):
        super().__init__()
        f1, f2 = conv_block_n_filters, conv_block_n_filters * conv_block_depth_mult
        # Short windows (the paper's are 1,125 samples; a pooled 0.44 s window may be 64): the pools shrink, the
        # second first, until every attention window is at least one TCN kernel long, and there are never more
        # windows than steps. Without this the two pools (56x) would leave one step or none.
        min_len = n_windows + tcn_kernel_size - 1
        p1 = max(1, min(conv_block_pool_size_1, n_times // min_len))
        p2 = max(1, min(conv_block_pool_size_2, n_times // p1 // min_len))
        n_seq = n_times // p1 // p2
        self.n_windows = max(1, min(n_windows, n_seq))
        self.window = n_seq - self.n_windows + 1
        # Kernels in time, not samples: the first at the input rate, the second at the rate after the first pool
        # (the paper's 16 samples follow a pool of 8 at 250 Hz).
        k1 = _scaled(conv_block_kernel_length_1, sfreq, 250.0, n_times)
        k2 = _scaled(conv_block_kernel_length_2, sfreq / p1, 250.0 / 8, n_times // p1)
        # "same" padding as Keras does it (the extra sample on the right for even kernels), padded explicitly:
        # torch's padding="same" copies the input for even kernels and warns.
        self.conv_block = nn.Sequential(
            nn.ZeroPad2d(((k1 - 1) // 2, k1 // 2, 0, 0)), nn.Conv2d(1, f1, (1, k1), bias=False), nn.BatchNorm2d(f1),
            nn.Conv2d(f1, f2, (n_chans, 1), groups=f1, bias=False), nn.BatchNorm2d(f2), nn.ELU(),
            nn.AvgPool2d((1, p1)), nn.Dropout(conv_block_dropout),
            nn.ZeroPad2d(((k2 - 1) // 2, k2 // 2, 0, 0)), nn.Conv2d(f2, f2, (1, k2), bias=False), nn.BatchNorm2d(f2), nn.ELU(),
            nn.AvgPool2d((1, p2)), nn.Dropout(conv_block_dropout))
        self.attention = nn.ModuleList(
            _WindowAttention(f2, att_num_heads, att_head_dim, att_drop_prob, conv_block_dropout)
            for _ in range(self.n_windows))
        self.tcn = nn.ModuleList(
            nn.Sequential(*(_TCNBlock(f2 if i == 0 else tcn_n_filters, tcn_n_filters, tcn_kernel_size, 2 ** i,
                                      tcn_drop_prob) for i in range(tcn_depth)))
            for _ in range(self.n_windows))
        self.concat = concat
        self.out_features = tcn_n_filters * (self.n_windows if concat else 1)
        self.token_shape = (self.n_windows, tcn_n_filters)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.conv_block(x.unsqueeze(1)).squeeze(2).transpose(1, 2)  # [B, F2, 1, T'] -> [B, T', F2]
        out = []
        for i, (attention, tcn) in enumerate(zip(self.attention, self.tcn)):
            window = attention(seq[:, i:i + self.window])  # [B, L, F2]
            out.append(tcn(window.transpose(1, 2))[:, :, -1])  # [B, filters]
        return torch.stack(out, 1)  # [B, n_windows, filters]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x)
        return tokens.flatten(1) if self.concat else tokens.mean(1)


class Flatten(nn.Module):
    """UBP's encoder input: the whole window as one vector (the projector is the model).

    ``spatial_filters`` > 0 first mixes the channels into that many learned virtual channels (a low-rank,
    spatial-then-temporal linear map: far fewer weights on many-channel caps).
    """

    def __init__(self, n_chans: int, n_times: int, sfreq: float = 250.0, spatial_filters: int = 0):
        super().__init__()
        self.spatial = nn.Conv1d(n_chans, spatial_filters, 1, bias=False) if spatial_filters else None
        self.out_features = (spatial_filters or n_chans) * n_times
        self.token_shape = (spatial_filters or n_chans, n_times)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(x) if self.spatial is not None else x  # [B, channels, T]: one token per channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x).flatten(1)


class Projector(nn.Module):
    """UBP's ``EEGProject`` head: Linear -> residual (GELU, Linear, Dropout) -> LayerNorm."""

    def __init__(self, in_features: int, out_features: int, drop_prob: float = 0.3):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.residual = nn.Sequential(nn.GELU(), nn.Linear(out_features, out_features), nn.Dropout(drop_prob))
        self.norm = nn.LayerNorm(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.norm(x + self.residual(x))


class EmbeddingPrior(nn.Module):
    """``x + MLP(x)``: predicted -> CLIP image embedding; the last layer starts at zero (identity at init). The
    modern recipe's prior (``ImageEmbeddingConditioner.prior``) and the paper recipe's fitted CLIP head's
    (``EEGConditioner.clip_prior``); ``training/prior.py`` fits it."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    @property
    def hidden(self) -> int:
        return int(self.net[1].out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


def build_backbone(arch: str, n_chans: int, n_times: int, sfreq: float, options: dict | None = None) -> nn.Module:
    """One of :data:`ARCHS` with its options (e.g. ``{"preset": "tiny"}`` for msm); ``.out_features`` is its width,
    ``.token_shape`` the ``(N, D)`` of its ``tokens``."""
    classes = {"msm": MSMBackbone, "shallow": ShallowFBCSPNet, "eegnet": EEGNet, "conformer": EEGConformer,
               "atcnet": ATCNet, "linear": Flatten}
    if arch not in classes:
        raise ConfigError(f"unknown encoder architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    try:
        return classes[arch](n_chans, n_times, sfreq, **(options or {}))
    except TypeError as exc:
        raise ConfigError(f"bad options for encoder architecture {arch!r}: {exc}") from None


def _pick_and_pool(x: torch.Tensor, pick: torch.Tensor, time_pool: int) -> torch.Tensor:
    """The channels in ``pick`` (all when empty), average-pooled over ``time_pool`` samples."""
    if pick.numel():
        x = x.index_select(1, pick.to(x.device))
    return F.avg_pool1d(x, time_pool) if time_pool > 1 else x


class TokenEncoder(nn.Module):
    """EEG window ``[B, n_chans, n_times]`` -> a backbone's token sequence ``[B, num_tokens, token_dim]``.

    What ``finetune --encoder-arch`` puts in the paper's conditioner when the encoder is not the paper's
    transformer on every channel and sample: the channel pick and time pooling of an aligned encoder, then its
    backbone's ``tokens``. For ``msm`` only the transformer is kept (the conditioner has its own CLIP pooling).
    """

    def __init__(self, arch: str, n_chans: int, n_times: int, sfreq: float, arch_options: dict | None = None,
                 channel_index: list | None = None, time_pool: int = 1):
        super().__init__()
        if time_pool < 1 or time_pool > n_times:
            raise ConfigError(f"time_pool must be in [1, {n_times}], got {time_pool}")
        if channel_index is not None and (not channel_index or min(channel_index) < 0 or max(channel_index) >= n_chans):
            raise ConfigError(f"channel_index must pick channels among the {n_chans} inputs")
        self.time_pool = time_pool
        self.register_buffer("pick", torch.as_tensor(channel_index or [], dtype=torch.long), persistent=False)
        inner = (n_chans if channel_index is None else len(channel_index), n_times // time_pool)
        backbone = build_backbone(arch, *inner, sfreq / time_pool, arch_options)
        self.num_tokens, self.token_dim = backbone.token_shape
        self.backbone = backbone.encoder if arch == "msm" else backbone
        # `--gradient-checkpointing` switches this on with the rest of the conditioner, and it stays a no-op:
        # recomputing the conv nets' BatchNorm in backward would update its running statistics twice, and their
        # activations are small beside the UNet's (the msm transformer checkpoints its own blocks).
        self.gradient_checkpointing = False

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x) if isinstance(self.backbone, EEGEncoder) else self.backbone.tokens(x)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        return self._tokens(_pick_and_pool(eeg, self.pick, self.time_pool))

    def load_backbone(self, aligned: "AlignedEncoder") -> None:
        """Copy the backbone weights of a trained aligned encoder of the same architecture."""
        source = aligned.backbone.encoder if isinstance(self.backbone, EEGEncoder) else aligned.backbone
        self.backbone.load_state_dict(source.state_dict())


class AlignedEncoder(ModelMixin, ConfigMixin):
    """EEG window ``[B, in_chans, in_times]`` -> predicted CLIP image embedding ``[B, clip_dim]``.

    ``channel_index`` (which input channels the backbone sees; None = all) and ``time_pool`` (average
    pooling of that many samples: a cheap, alias-free downsampling) are part of the model, so the model
    takes the same window as the rest of the pipeline. ``logit_scale`` is InfoNCE's learnable inverse
    temperature (log-parametrised, as CLIP's); ``target_scale`` the mean norm of the CLIP targets it was
    trained on, so :meth:`embed` returns vectors of CLIP's own length (what an IP-Adapter expects).
    """

    @register_to_config
    def __init__(
        self,
        arch: str = "msm",
        in_chans: int = 128,
        in_times: int = 512,
        in_sfreq: float = 512 / 0.44,
        clip_dim: int = 768,
        channel_index: list | None = None,
        channel_names: list | None = None,
        time_pool: int = 1,
        arch_options: dict | None = None,
        proj_dropout: float = 0.3,
        init_temperature: float = 0.07,
        target_scale: float = 1.0,
    ):
        super().__init__()
        if time_pool < 1 or time_pool > in_times:
            raise ConfigError(f"time_pool must be in [1, {in_times}], got {time_pool}")
        if channel_index is not None and (not channel_index or min(channel_index) < 0 or max(channel_index) >= in_chans):
            raise ConfigError(f"channel_index must pick channels among the {in_chans} inputs")
        self.n_chans = in_chans if channel_index is None else len(channel_index)
        self.n_times = in_times // time_pool
        self.sfreq = in_sfreq / time_pool
        pick = torch.as_tensor(channel_index if channel_index is not None else [], dtype=torch.long)
        self.register_buffer("pick", pick, persistent=False)  # from the config, so not saved twice
        self.backbone = build_backbone(arch, self.n_chans, self.n_times, self.sfreq, arch_options)
        self.projector = Projector(self.backbone.out_features, clip_dim, proj_dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))

    def prepare(self, eeg: torch.Tensor) -> torch.Tensor:
        """The dataset's window ``[B, in_chans, in_times]`` -> the backbone's input ``[B, n_chans, n_times]``."""
        cfg = self.config
        if eeg.ndim != 3 or tuple(eeg.shape[1:]) != (cfg.in_chans, cfg.in_times):
            raise ConfigError(f"the aligned encoder expects EEG [batch, {cfg.in_chans}, {cfg.in_times}], "
                              f"got {tuple(eeg.shape)}")
        return _pick_and_pool(eeg.to(self.dtype), self.pick, cfg.time_pool)

    def forward_prepared(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))

    @torch.no_grad()
    def start_from_linear_map(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Start the ``linear`` arch as the affine map ``x.flatten(1) @ weight.T + bias`` of the prepared input
        ``x [B, n_chans, n_times]`` (``weight [clip_dim, n_chans * n_times]``, e.g. a closed-form ridge solution),
        followed only by the projector's LayerNorm: its residual branch starts at zero.

        With ``spatial_filters`` K the map is factorised over the channels: the K leading left singular vectors of
        the weight arranged ``[n_chans, clip_dim * n_times]`` become the spatial filters (exact when the map's
        channel rank is at most K, its best rank-K approximation otherwise)."""
        if self.config.arch != "linear":
            raise ConfigError(f"a linear start needs the linear arch, not {self.config.arch!r}")
        dim, c, t = self.projector.linear.out_features, self.n_chans, self.n_times
        w = torch.as_tensor(weight, dtype=torch.float32).reshape(dim, c, t)
        spatial = self.backbone.spatial
        if spatial is not None:
            by_channel = w.permute(1, 0, 2).reshape(c, dim * t)
            filters = torch.linalg.svd(by_channel, full_matrices=False)[0][:, :spatial.out_channels].T  # [K, C]
            spatial.weight.copy_(filters[:, :, None].to(spatial.weight.dtype))
            w = (filters @ by_channel).reshape(-1, dim, t).permute(1, 0, 2)  # [dim, K, T]
        self.projector.linear.weight.copy_(w.reshape(dim, -1).to(self.projector.linear.weight.dtype))
        self.projector.linear.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        last = self.projector.residual[1]
        last.weight.zero_()
        last.bias.zero_()

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        """Unnormalised projector output ``[B, clip_dim]`` (InfoNCE normalises it)."""
        return self.forward_prepared(self.prepare(eeg))

    def temperature_scale(self) -> torch.Tensor:
        """``exp(logit_scale)`` capped at 100 (CLIP's cap: a colder softmax only destabilises training)."""
        return self.logit_scale.exp().clamp(max=100.0)

    @torch.no_grad()
    def embed(self, eeg: torch.Tensor) -> torch.Tensor:
        """Predicted CLIP image embedding ``[B, clip_dim]``: unit direction x the targets' mean norm."""
        return F.normalize(self(eeg).float(), dim=-1) * float(self.config.target_scale)


def load_aligned_encoder(path: str | os.PathLike) -> AlignedEncoder:
    """An :class:`AlignedEncoder` from the output folder of ``dreamdiffusion align`` (or its ``encoder/``)."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file() and (path / "encoder" / "config.json").is_file():
        path, config_file = path / "encoder", path / "encoder" / "config.json"
    if not config_file.is_file():
        raise ConfigError("not an aligned encoder folder (no config.json)", path)
    config = read_json_config(config_file)  # bounds and types before anything is built
    check_model_folder(path)
    if config.get("_class_name") != ALIGNED_CONFIG_NAME:
        raise ConfigError(f"not an aligned encoder (class {config.get('_class_name')!r}; "
                          "make one with `dreamdiffusion align`)", config_file)
    try:
        model = AlignedEncoder.from_pretrained(path, low_cpu_mem_usage=False, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot load the aligned encoder: {str(exc).splitlines()[0]}", path) from None
    return model.eval()


__all__ = ["ARCHS", "AlignedEncoder", "MSMBackbone", "ShallowFBCSPNet", "EEGNet", "EEGConformer", "ATCNet", "Flatten",
           "Projector", "EmbeddingPrior", "TokenEncoder", "build_backbone", "load_aligned_encoder"]
