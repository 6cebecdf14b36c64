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
- ``linear``: UBP's encoder (Wu et al., CVPR 2025): the window flattened; with the projector below this is
  their two-layer ``EEGProject``.

Why written here rather than imported from braindecode: braindecode 1.8 imports ``torchaudio`` at the top
of ``braindecode.models`` (through ``braindecode.modules.filter``), and no torchaudio build matches the
project's pinned CPU torch; the layers above follow the papers (and braindecode's defaults) instead.
ATCNet is not included (its multi-window attention + TCN head is the largest of these and no recipe here
needs it).

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

ARCHS = ("msm", "shallow", "eegnet", "conformer", "linear")
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
        self.encoder = EEGEncoder(n_chans, n_times, sfreq, patch_size, **enc)
        self.pool = nn.Conv1d(self.encoder.num_tokens, 1, kernel_size=1)
        self.out_features = enc["embed_dim"]

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.spatial(self.temporal(x.unsqueeze(1))))  # [B, F, 1, T']
        x = torch.log(torch.clamp(self.pool(x * x), min=1e-6))  # band power, log (the FBCSP analogue)
        return self.drop(x).flatten(1)


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
        with torch.no_grad():
            self.out_features = int(self.block2(self.block1(torch.zeros(1, 1, n_chans, n_times))).numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x.unsqueeze(1))).flatten(1)


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x.unsqueeze(1)).squeeze(2).transpose(1, 2)  # [B, F, 1, P] -> [B, P, F]
        return self.transformer(x).flatten(1)


class Flatten(nn.Module):
    """UBP's encoder input: the whole window as one vector (the projector is the model).

    ``spatial_filters`` > 0 first mixes the channels into that many learned virtual channels (a low-rank,
    spatial-then-temporal linear map: far fewer weights on many-channel caps).
    """

    def __init__(self, n_chans: int, n_times: int, sfreq: float = 250.0, spatial_filters: int = 0):
        super().__init__()
        self.spatial = nn.Conv1d(n_chans, spatial_filters, 1, bias=False) if spatial_filters else None
        self.out_features = (spatial_filters or n_chans) * n_times

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.spatial(x) if self.spatial is not None else x).flatten(1)


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


def build_backbone(arch: str, n_chans: int, n_times: int, sfreq: float, options: dict | None = None) -> nn.Module:
    """One of :data:`ARCHS` with its options (e.g. ``{"preset": "tiny"}`` for msm); ``.out_features`` is its width."""
    classes = {"msm": MSMBackbone, "shallow": ShallowFBCSPNet, "eegnet": EEGNet, "conformer": EEGConformer,
               "linear": Flatten}
    if arch not in classes:
        raise ConfigError(f"unknown encoder architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    try:
        return classes[arch](n_chans, n_times, sfreq, **(options or {}))
    except TypeError as exc:
        raise ConfigError(f"bad options for encoder architecture {arch!r}: {exc}") from None


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
        x = eeg.to(self.dtype)
        if self.pick.numel():
            x = x.index_select(1, self.pick.to(x.device))
        if cfg.time_pool > 1:
            x = F.avg_pool1d(x, cfg.time_pool)
        return x

    def forward_prepared(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))

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


__all__ = ["ARCHS", "AlignedEncoder", "MSMBackbone", "ShallowFBCSPNet", "EEGNet", "EEGConformer", "Flatten",
           "Projector", "build_backbone", "load_aligned_encoder"]
