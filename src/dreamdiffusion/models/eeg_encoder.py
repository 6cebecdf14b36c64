"""Stage A model: masked signal modeling (MSM) over temporal EEG tokens.

The paper's tokenizer (Bai et al. 2023, Sec. 3.2; reference ``code/sc_mbm/mae_for_eeg.py``):
a Conv1d with kernel = stride = ``patch_size`` (4) over *all* channels turns a window of
``n_chans x n_times`` (128 x 512) into ``n_times / patch_size`` (128) time tokens. A share of the
tokens (best: 0.75) is masked, the encoder sees only the visible ones (as in MAE), and a lighter
decoder reconstructs the masked tokens in the time domain. The loss covers masked tokens only (the
paper's; ``visible_loss_weight`` adds the visible ones at that weight).

Pure model file: no data reading, no training loop. Shapes are commented as ``[B, N, D]``
(batch, tokens, width). Attention runs on ``torch.nn.functional.scaled_dot_product_attention``
so PyTorch picks the fused kernel (flash / memory-efficient) where the hardware has one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.utils.checkpoint import checkpoint

from dreamdiffusion.core.constants import PAPER_SFREQ
from dreamdiffusion.core.errors import check_eeg_shape

# Size presets. `paper` is the reference code's encoder (about 152M parameters: 24 blocks of
# width 1024 with MLP ratio 1.0); `small` is the 2-layer encoder of the paper's ablation;
# `tiny` trains in seconds on a CPU (tests and the demo).
PRESETS: dict[str, dict] = {
    "paper": dict(embed_dim=1024, depth=24, num_heads=16, mlp_ratio=1.0,
                  decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16),
    "small": dict(embed_dim=1024, depth=2, num_heads=16, mlp_ratio=1.0,
                  decoder_embed_dim=512, decoder_depth=2, decoder_num_heads=16),
    "tiny": dict(embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.0,
                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4),
}
ENCODER_KEYS = ("embed_dim", "depth", "num_heads", "mlp_ratio")
# Encoder options beyond the paper's (absent from older config.json files: their defaults are the paper's).
ENCODER_OPTION_KEYS = ("alibi", "patch_init", "block_init", "final_norm")
# Starts of the patch embedding: xavier (MAE's, the reference code's) | orthogonal | pca (init_patch_embed says why).
PATCH_INITS = ("xavier", "orthogonal", "pca")
# Starts of the transformer blocks: xavier (the reference code's) | zero (init_blocks says why).
BLOCK_INITS = ("xavier", "zero")


def sincos_positions(n_positions: int, dim: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 1-D sine-cosine positions, ``[n_positions (+1 for cls, all zeros), dim]``."""
    if dim % 2:
        raise ValueError(f"embedding width must be even for sine-cosine positions, got {dim}")
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(np.arange(n_positions, dtype=np.float64), omega)  # [N, D/2]
    table = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)  # [N, D]
    if cls_token:
        table = np.concatenate([np.zeros((1, dim)), table], axis=0)
    return torch.from_numpy(table).float()


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape  # [B, N, D]
        qkv = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = None if bias is None else bias.to(x.dtype)  # [B, H, N, N] added to the attention logits
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=bias)  # [B, H, N, D/H]
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block (the timm ViT block the reference code uses)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


def _run_blocks(blocks: nn.ModuleList, x: torch.Tensor, use_checkpointing: bool,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    for blk in blocks:
        if use_checkpointing and torch.is_grad_enabled():
            x = checkpoint(blk, x, bias, use_reentrant=False)
        else:
            x = blk(x, bias)
    return x


def alibi_bias(positions: torch.Tensor, num_heads: int) -> torch.Tensor:
    """ALiBi (Press et al. 2022): attention-logit bias ``-slope_h * |p_i - p_j|``, ``[B, H, n + 1, n + 1]``.

    ``positions`` ``[B, n]`` are the tokens' places in time (in tokens); a cls token is prepended
    with no bias to or from anything. Slopes fall geometrically over the heads (1, 1/4, 1/16, ... for
    4 heads): some heads look at the nearest tokens from the first step, others over the whole
    window. Random masking of short tokens rewards looking at the neighbours; a model that must
    first learn that from sine-cosine positions sits at the zero predictor for hundreds of steps.
    """
    slopes = 2.0 ** (-8.0 / max(num_heads, 4) * torch.arange(num_heads, device=positions.device))  # [H]
    pos = positions.float()
    dist = (pos[:, :, None] - pos[:, None, :]).abs()  # [B, n, n]
    bias = -slopes[None, :, None, None] * dist[:, None]  # [B, H, n, n]
    return F.pad(bias, (1, 0, 1, 0))  # cls row and column: 0


def init_patch_embed(weight: torch.Tensor, how: str, filters: torch.Tensor | None = None) -> None:
    """Initialise a patch embedding's weight ``[D, C, p]`` in place.

    ``xavier``: like a Linear over the flattened patch (MAE, the reference code). ``orthogonal``: output ``d`` reads
    the patch's mean through spatial filter ``Q[d]``, the rows (or columns, when ``D > C``) of ``Q`` orthonormal, so
    the flattened weight has orthonormal rows too. Why: a token narrower than ``C x p`` cannot keep everything, and
    a random Gaussian projection is badly conditioned; masked signal modeling then spends the width on the
    background, which dominates the variance, and a linear read-out of the evoked response (which varies slowly
    within a 4-sample patch) loses most of it. Starting from orthonormal patch means keeps the slow part at its own
    scale; training is free to add the within-patch detail (docs/pretrain.md has the probe numbers).

    ``pca``: the same read-out of the patch mean through given spatial ``filters`` ``[D, C]`` (``pretrain`` passes the
    corpus' leading principal components, whitened: :func:`dreamdiffusion.training.pretrain.corpus_spatial_filters`).
    Without ``filters`` (an encoder built from its config alone, e.g. to load saved weights) it starts as
    ``orthogonal``.
    """
    if how not in PATCH_INITS:
        raise ValueError(f"unknown patch_init {how!r}; choose one of {', '.join(PATCH_INITS)}")
    d_out, n_chans, patch = weight.shape
    if how == "xavier":
        nn.init.xavier_uniform_(weight.view(d_out, -1))
        return
    if how == "pca" and filters is not None:
        if tuple(filters.shape) != (d_out, n_chans):
            raise ValueError(f"{tuple(filters.shape)} spatial filters for a [{d_out}, {n_chans}] patch embedding")
        q = filters.to(weight.dtype)
    else:
        q = nn.init.orthogonal_(torch.empty(d_out, n_chans, dtype=weight.dtype))
    weight.copy_(q[:, :, None].expand(d_out, n_chans, patch) / patch ** 0.5)


def init_blocks(blocks: nn.ModuleList, how: str) -> None:
    """Start transformer blocks as ``how`` says: ``xavier`` (every Linear, the reference code's) leaves them as they
    are; ``zero`` sets the last layer of every residual branch (the attention's output projection, the MLP's second
    Linear) to zero, so each block starts as the identity and the tokens start as the patch embedding (ReZero,
    Fixup and DiT's adaLN-Zero start the same way). Why: from the xavier start two random blocks and the final
    LayerNorm mix the patch embedding with itself across time and width, and a linear read-out of the tokens keeps
    less of the evoked response than the patch embedding had (docs/pretrain.md); masked signal modeling then has to
    learn its way back. The branches still get gradients (their inputs are not zero) and grow as the loss asks.
    """
    if how not in BLOCK_INITS:
        raise ValueError(f"unknown block_init {how!r}; choose one of {', '.join(BLOCK_INITS)}")
    if how == "zero":
        for blk in blocks:
            nn.init.zeros_(blk.attn.proj.weight)
            nn.init.zeros_(blk.mlp[-1].weight)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class TokenAffine(nn.Module):
    """``x * weight + bias`` per feature: the encoder's ``final_norm="affine"``. It starts as the identity;
    :meth:`EEGEncoder.calibrate_norm` sets it from the tokens of some EEG. Its parameters have a LayerNorm's names and
    shapes, so a folder saved with either loads into the other's state keys."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


FINAL_NORMS = ("layernorm", "affine")  # the kinds of final_norm beside True (= "layernorm") and False (none)


def final_norm_kind(value: bool | str | None) -> str:
    """An encoder's ``final_norm`` config value as one name: "layernorm" (True), "affine" or "none" (False)."""
    if value is True or value == "layernorm":
        return "layernorm"
    if value == "affine":
        return "affine"
    if value is False or value is None:
        return "none"
    raise ValueError(f"final_norm must be True, False or one of {', '.join(FINAL_NORMS)}, got {value!r}")


def final_norm_module(kind: bool | str, dim: int) -> nn.Module:
    """The encoder's last norm from its config value: True / "layernorm", "affine", or False (none)."""
    return {"layernorm": lambda: nn.LayerNorm(dim, eps=1e-6), "affine": lambda: TokenAffine(dim),
            "none": nn.Identity}[final_norm_kind(kind)]()


class EEGEncoder(ModelMixin, ConfigMixin):
    """EEG window ``[B, n_chans, n_times]`` -> tokens ``[B, n_times / patch_size, embed_dim]``.

    Parameters follow braindecode: ``n_chans``, ``n_times``, ``sfreq`` (the rate the model
    expects its input at; data are resampled to it so that a window always spans
    ``n_times / sfreq`` seconds).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 512,
        sfreq: float = PAPER_SFREQ,
        patch_size: int = 4,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 1.0,
        alibi: bool = False,
        patch_init: str = "xavier",
        block_init: str = "xavier",
        final_norm: bool | str = True,
    ):
        super().__init__()
        if n_times % patch_size:
            raise ValueError(f"n_times={n_times} is not a multiple of patch_size={patch_size}")
        self.num_tokens = n_times // patch_size
        # One token = patch_size samples of every channel.
        self.patch_embed = nn.Conv1d(n_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_positions(self.num_tokens, embed_dim)[None], persistent=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        # The paper's (MAE's) last LayerNorm divides every token by its own spread, which the background dominates;
        # final_norm=False hands Stage B the blocks' output as it is (docs/pretrain.md measures what that keeps);
        # "affine" a per-feature affine map (TokenAffine) that Stage B sets to unit spread: scaled like a LayerNorm's
        # output but linear, so no token loses what a linear read-out of it finds.
        self.norm = final_norm_module(final_norm, embed_dim)
        self.gradient_checkpointing = False
        self.apply(_init_weights)
        init_patch_embed(self.patch_embed.weight.data, patch_init)
        init_blocks(self.blocks, block_init)
        nn.init.normal_(self.cls_token, std=0.02)

    def check_input(self, eeg: torch.Tensor) -> None:
        check_eeg_shape(eeg.shape, self.config.n_chans, self.config.n_times, self.config.sfreq)

    def embed(self, eeg: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> positioned tokens ``[B, N, D]`` (no cls token yet)."""
        self.check_input(eeg)
        x = self.patch_embed(eeg).transpose(1, 2)  # [B, N, D]
        return x + self.pos_embed[:, 1:, :].to(x.dtype)

    def encode_tokens(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Prepend the cls token to ``[B, n, D]`` and run the transformer: ``[B, 1 + n, D]``.

        ``positions`` ``[B, n]``: where in time each token sits (default ``0 .. n-1``); only the
        ``alibi`` bias reads them (the sine-cosine positions are already added by :meth:`embed`).
        """
        cls = (self.cls_token + self.pos_embed[:, :1, :]).to(x.dtype).expand(x.shape[0], -1, -1)
        bias = None
        if self.config.get("alibi", False):
            if positions is None:
                # One row for the whole batch: the bias [1, H, n+1, n+1] broadcasts (B copies cost a tenth of a forward).
                positions = torch.arange(x.shape[1], device=x.device)[None]
            bias = alibi_bias(positions, self.blocks[0].attn.num_heads) if len(self.blocks) else None
        x = torch.cat([cls, x], dim=1)
        return self.norm(_run_blocks(self.blocks, x, self.gradient_checkpointing, bias))

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        """All tokens, cls dropped: the conditioning sequence of Stage B, ``[B, N, D]``."""
        return self.encode_tokens(self.embed(eeg))[:, 1:, :]

    @torch.no_grad()
    def calibrate_norm(self, eeg: torch.Tensor) -> dict:
        """Set a ``TokenAffine`` final norm so the tokens of ``eeg`` ``[B, C, T]`` come out centred per feature with
        unit spread over all features (one scale: the features keep their relative sizes, as the probe reads them).
        Returns ``{"scale", "spread"}`` (the spread the centred tokens had before)."""
        if not isinstance(self.norm, TokenAffine):
            raise ValueError(f"calibrate_norm needs final_norm='affine', this encoder has {self.config.final_norm!r}")
        self.norm.weight.fill_(1.0)
        self.norm.bias.zero_()
        tokens = self(eeg).float().reshape(-1, self.config.embed_dim)
        mean = tokens.mean(0)
        spread = float((tokens - mean).std())
        scale = 1.0 / max(spread, 1e-12)
        self.norm.weight.fill_(scale)
        self.norm.bias.copy_(-mean * scale)
        return {"scale": scale, "spread": spread}


def random_masking(x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None, span: int = 1):
    """Per-sample random masking by shuffling (MAE). ``x``: ``[B, N, D]``.

    ``span > 1`` masks runs of ``span`` neighbouring tokens together (block masking): the gaps are
    then too long to bridge by interpolating the visible neighbours, so the model has to use the
    signal's structure. Returns the visible tokens ``[B, n_keep, D]``, the binary mask ``[B, N]``
    (1 = masked) in the original order, and ``ids_restore`` ``[B, N]`` that un-shuffles.
    """
    b, n, d = x.shape
    n_keep = max(1, int(round(n * (1.0 - mask_ratio))))
    if span > 1:  # one draw per run of `span` tokens; the position breaks ties so a run stays together
        groups = torch.rand(b, -(-n // span), device=x.device, generator=generator)
        noise = groups.repeat_interleave(span, dim=1)[:, :n] + torch.arange(n, device=x.device) * 1e-7
    else:
        noise = torch.rand(b, n, device=x.device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :n_keep]
    visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
    mask = torch.ones(b, n, device=x.device, dtype=x.dtype)
    mask[:, :n_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return visible, mask, ids_restore


class MaskedSignalModel(ModelMixin, ConfigMixin):
    """Encoder + lighter decoder trained to reconstruct masked EEG tokens (Stage A)."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 512,
        sfreq: float = PAPER_SFREQ,
        patch_size: int = 4,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 1.0,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mask_ratio: float = 0.75,
        norm_target: bool = False,
        mask_span: int = 1,
        predict_stats: bool = False,
        alibi: bool = False,
        patch_init: str = "xavier",
        block_init: str = "xavier",
        visible_loss_weight: float = 0.0,
        final_norm: bool | str = True,
    ):
        super().__init__()
        # Keywords, not positions: diffusers' register_to_config lists positional arguments under
        # _use_default_values, and from_config(encoder.config) would then rebuild the *default* (paper-size) encoder.
        self.encoder = EEGEncoder(n_chans=n_chans, n_times=n_times, sfreq=sfreq, patch_size=patch_size,
                                  embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                                  alibi=alibi, patch_init=patch_init, block_init=block_init, final_norm=final_norm)
        n_tokens = self.encoder.num_tokens
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", sincos_positions(n_tokens, decoder_embed_dim)[None], persistent=False)
        self.decoder_blocks = nn.ModuleList(
            [Block(decoder_embed_dim, decoder_num_heads, mlp_ratio) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        # With predict_stats the decoder also outputs each token's mean and log-std (the last 2 values),
        # so a normalised-target model can be put back into input units from what it saw alone.
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size * n_chans + (2 if predict_stats else 0))
        self.gradient_checkpointing = False
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            m.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    @classmethod
    def from_preset(cls, preset: str, **overrides) -> "MaskedSignalModel":
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[preset], **overrides})

    def patchify(self, eeg: torch.Tensor) -> torch.Tensor:
        """``[B, C, T]`` -> ``[B, N, patch_size * C]``, time-major within a token (as the reference)."""
        b, c, t = eeg.shape
        p = self.config.patch_size
        return eeg.transpose(1, 2).reshape(b, t // p, p * c)

    def unpatchify(self, tokens: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`patchify`: ``[B, N, p * C]`` -> ``[B, C, T]``."""
        b, n, _ = tokens.shape
        p, c = self.config.patch_size, self.config.n_chans
        return tokens.reshape(b, n * p, c).transpose(1, 2)

    def sample_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """Token mask ``[B, N]`` -> sample mask ``[B, T]`` (1 where the model had to reconstruct)."""
        return mask.repeat_interleave(self.config.patch_size, dim=1)

    def forward_encoder(self, eeg, mask_ratio, generator=None):
        x = self.encoder.embed(eeg)  # [B, N, D]
        visible, mask, ids_restore = random_masking(x, mask_ratio, generator, span=self.config.mask_span)
        positions = torch.argsort(ids_restore, dim=1)[:, : visible.shape[1]]  # [B, n_keep]: where they sit
        latent = self.encoder.encode_tokens(visible, positions)  # [B, 1 + n_keep, D], visible tokens only
        return latent, mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)  # [B, 1 + n_keep, Dd]
        b, n = ids_restore.shape
        fill = self.mask_token.to(x.dtype).expand(b, n + 1 - x.shape[1], -1)
        tokens = torch.cat([x[:, 1:, :], fill], dim=1)  # [B, N, Dd], still shuffled
        tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1, :], tokens], dim=1) + self.decoder_pos_embed.to(x.dtype)
        bias = None
        if self.config.alibi and len(self.decoder_blocks):
            bias = alibi_bias(torch.arange(n, device=x.device).expand(b, -1), self.decoder_blocks[0].attn.num_heads)
        x = self.decoder_norm(_run_blocks(self.decoder_blocks, x, self.gradient_checkpointing, bias))
        return self.decoder_pred(x)[:, 1:, :]  # [B, N, p * C (+ 2 with predict_stats)]

    @staticmethod
    def token_stats(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token mean and standard deviation ``[B, N, 1]`` each (of ``[B, N, p * C]``)."""
        return tokens.mean(dim=-1, keepdim=True), (tokens.var(dim=-1, keepdim=True) + 1e-6).sqrt()

    def forward_loss(self, eeg: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error over masked tokens (the paper's loss), plus ``visible_loss_weight`` x the same over the
        visible ones where that weight is set."""
        target = self.patchify(eeg).float()
        pred = pred.float()
        extra = 0.0
        if self.config.norm_target:  # per-token normalised targets (MAE's norm_pix_loss)
            mean, std = self.token_stats(target)
            target = (target - mean) / std
            if self.config.predict_stats:  # ... and the statistics themselves, as two more targets
                stats = torch.cat([mean, std.log()], dim=-1)  # [B, N, 2]
                extra = ((pred[..., -2:] - stats) ** 2).mean(dim=-1)
        per_token = ((pred[..., : target.shape[-1]] - target) ** 2).mean(dim=-1) + extra  # [B, N]
        loss = (per_token * mask).sum() / mask.sum().clamp_min(1.0)
        weight = self.config.visible_loss_weight
        if weight:  # the visible tokens rebuilt too: the encoder must pass on what each token holds, not just context
            visible = 1.0 - mask
            loss = loss + weight * (per_token * visible).sum() / visible.sum().clamp_min(1.0)
        return loss

    def reconstruct(self, eeg: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Predicted tokens -> signal ``[B, C, T]`` in the input's units.

        A ``norm_target`` model predicts per-token normalised values. With ``predict_stats`` its own
        predicted mean and spread put them back; without, the true token's are used (as MAE does for
        its pictures), which hands the reconstruction two numbers of every hidden token: such scores
        flatter the model against predictors that see the visible samples only.
        """
        pred = pred.float()
        n_values = self.config.patch_size * self.config.n_chans
        if self.config.norm_target:
            if self.config.predict_stats:
                mean, std = pred[..., n_values:n_values + 1], pred[..., n_values + 1:].clamp(max=20.0).exp()
            else:
                mean, std = self.token_stats(self.patchify(eeg).float())
            pred = pred[..., :n_values] * std + mean
        return self.unpatchify(pred[..., :n_values])

    def forward(self, eeg: torch.Tensor, mask_ratio: float | None = None, generator: torch.Generator | None = None):
        """Returns ``(loss, pred [B, N, p*C], mask [B, N])``."""
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {ratio}")
        latent, mask, ids_restore = self.forward_encoder(eeg, ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(eeg, pred, mask), pred, mask


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["EEGEncoder", "MaskedSignalModel", "PRESETS", "PATCH_INITS", "BLOCK_INITS", "PAPER_SFREQ", "init_patch_embed", "init_blocks", "random_masking", "sincos_positions",
           "count_parameters"]
