"""Stage B conditioning: EEG tokens -> UNet cross-attention context, CLIP head, time conditioning.

The paper (Bai et al. 2023, Sec. 3.3; reference ``code/dc_ldm/ldm_for_eeg.py``) replaces Stable
Diffusion's CLIP-text context with a mapping of the pretrained EEG encoder's tokens:

- token mapper: two 1x1 ``Conv1d`` over the *token* axis (N=128 -> 64 -> 77, no nonlinearity),
  then a ``Linear`` from the encoder width to the UNet's ``cross_attention_dim``: ``[B, 77, Dx]``;
- CLIP head: a 1x1 ``Conv1d`` N -> 1 over the raw encoder tokens, then a ``Linear`` to CLIP's
  projection size; trained with ``1 - cos(head, CLIP image_embeds)`` against the paired image
  (``clip_pool_tokens`` K > 1: N -> K mixtures, flattened before the ``Linear``; the paper's is 1);
  ``clip_head="filters"`` replaces it by the field's low-rank head on the same tokens (a few learned filters over
  the token width, the tokens averaged into time bins, UBP's projector), fitted after the CLIP warm-up
  (``training/clip_head_refit.py``); ``clip_head="eeg"`` fits the same head on the EEG window the tokens are made
  of (channels in place of the token width), beside the encoder, which still makes the context; either fitted head
  may be read through an MLP prior (``clip_prior``, the modern recipe's, fitted after it) that moves its prediction
  toward where CLIP's embeddings lie;
- optional time conditioning: the context pooled by two 1x1 ``Conv1d`` (77 -> 38 -> 1) and
  projected to the UNet's time-embedding width, added to the timestep embedding so that the EEG
  also modulates every ResBlock.

Design choices (documented because the paper leaves them open):

- The encoder is a submodule, so a pipeline has one component ``eeg_conditioner`` that saves as
  ``config.json`` + ``diffusion_pytorch_model.safetensors``.
- Time conditioning is added with a forward hook on ``unet.time_embedding`` installed only for
  the duration of a call (:meth:`EEGConditioner.conditioning`). This works with any stock
  ``UNet2DConditionModel`` checkpoint: diffusers' ``timestep_cond`` / ``class_labels`` inputs
  would need a UNet *config* change (``time_cond_proj_dim`` / ``class_embed_type``), i.e. a
  different UNet than the base model.
- A learned null-EEG context ``[77, Dx]`` (the reference has none) is what condition dropout
  trains, so generation can use classifier-free guidance.
- Other encoders (``arch``: the field's conv nets, ATCNet, EEGConformer, UBP's linear encoder; or the
  transformer behind a channel pick / time pooling): a
  :class:`~dreamdiffusion.models.encoders.TokenEncoder` gives their token sequence ``[B, N, D]`` (a conv
  net's feature map over time, ATCNet's windows, the linear encoder's channels), and the mappers above
  treat it exactly as the transformer's tokens. The paper's layout (``arch="msm"``, every channel and
  sample) keeps the transformer itself as ``encoder``, so every saved pipeline loads as before; with
  another layout the paper encoder's keys (``embed_dim`` ... ``alibi``) are unused.

Pure model file: no training loop, no data reading beyond ``from_pretrained``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from dreamdiffusion.core.config import check_model_folder, read_json_config
from dreamdiffusion.core.constants import PAPER_SFREQ
from dreamdiffusion.core.errors import ConfigError, check_eeg_shape
from dreamdiffusion.data.transforms import binned_means
from dreamdiffusion.models.class_reader import ClassReader
from dreamdiffusion.models.eeg_encoder import (
    ENCODER_KEYS,
    ENCODER_OPTION_KEYS,
    PRESETS,
    EEGEncoder,
    MaskedSignalModel,
    final_norm_kind,
)
from dreamdiffusion.models.encoders import (
    ALIGNED_CONFIG_NAME,
    AlignedEncoder,
    EmbeddingPrior,
    TokenEncoder,
    load_aligned_encoder,
)

logger = logging.getLogger(__name__)

# the paper's pooled tokens + Linear | the field's low-rank head (filters_head) on the tokens | the same head on the
# EEG window itself (beside the encoder, which still makes the context)
CLIP_HEADS = ("pool", "filters", "eeg")

ENCODER_CONFIG_KEYS = ("n_chans", "n_times", "sfreq", "patch_size") + ENCODER_KEYS + ENCODER_OPTION_KEYS


def _paper_layout(arch: str, channel_index: list | None, time_pool: int) -> bool:
    return arch == "msm" and channel_index is None and int(time_pool) == 1


@dataclass
class ConditionerOutput:
    cond: torch.Tensor  # [B, num_cond_tokens, cross_attention_dim]: UNet encoder_hidden_states
    clip_embeds: torch.Tensor  # [B, clip_dim]: compared with CLIP image_embeds
    tokens: torch.Tensor  # [B, N, D]: the encoder's raw tokens


class LatentDecoder(nn.Module):
    """EEG ``[B, C, T]`` -> VAE latents ``[B, *latent_shape]``: the EEG averaged in ``n_bins`` time bins per channel
    (the linear ERP decoder's features, :func:`~dreamdiffusion.data.transforms.binned_means`), then one linear map."""

    def __init__(self, n_chans: int, n_bins: int, latent_shape):
        super().__init__()
        self.n_bins = int(n_bins)
        self.latent_shape = tuple(int(v) for v in latent_shape)
        self.linear = nn.Linear(n_chans * self.n_bins, int(torch.tensor(self.latent_shape).prod()))

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        features = binned_means(eeg.to(self.linear.weight.dtype), self.n_bins)
        return self.linear(features).reshape(len(eeg), *self.latent_shape)


class LatentGuessMixin:
    """The optional low-level guess both EEG models share: a :class:`LatentDecoder` in ``self.latent_decoder`` (built
    from the ``latent_shape`` / ``latent_bins`` of the model's config, or added later) and :meth:`init_latents`, from
    which the pipeline starts sampling (``low_level_strength``)."""

    latent_decoder: LatentDecoder | None

    def add_latent_decoder(self, latent_shape, n_bins: int = 16) -> LatentDecoder:
        """Give the model an (unfitted) :class:`LatentDecoder` of ``latent_shape`` and record it in the config, so the
        saved folder loads with it. Fitted afterwards in closed form
        (:func:`dreamdiffusion.training.prior.fit_latent_decoder`). On the paper's conditioner it is not part of the
        paper's method: the demo adds it after Stage B, where val chooses how far to trust it (strength 1 = not at
        all)."""
        shape = [int(v) for v in latent_shape]
        self.latent_decoder = LatentDecoder(self.config.n_chans, n_bins, shape).to(self.device, self.dtype)
        self.register_to_config(latent_shape=shape, latent_bins=int(n_bins))
        return self.latent_decoder

    def init_latents(self, eeg: torch.Tensor) -> torch.Tensor | None:
        """The low-level guess of the image's VAE latents ``[B, *latent_shape]``; None without a latent decoder."""
        if self.latent_decoder is None:
            return None
        self.check_eeg(eeg)
        return self.latent_decoder(eeg)


class EEGConditioner(LatentGuessMixin, ModelMixin, ConfigMixin):
    """EEG window ``[B, n_chans, n_times]`` -> cross-attention context, CLIP embedding, time conditioning."""

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
        cross_attention_dim: int = 768,
        clip_dim: int = 768,
        num_cond_tokens: int = 77,
        mid_tokens: int = 64,
        time_embed_dim: int | None = 1280,
        alibi: bool = False,
        patch_init: str = "xavier",
        block_init: str = "xavier",
        final_norm: bool | str = True,
        arch: str = "msm",
        arch_options: dict | None = None,
        channel_index: list | None = None,
        time_pool: int = 1,
        clip_pool_tokens: int = 1,
        clip_context: bool = False,
        latent_shape: list[int] | None = None,
        latent_bins: int = 16,
        clip_head: str = "pool",
        clip_head_filters: int = 8,
        clip_head_bins: int = 16,
        clip_head_scale: float = 1.0,
        clip_head_prior: int = 0,
        class_contexts: int = 0,
        class_context_bins: int = 8,
    ):
        super().__init__()
        if clip_pool_tokens < 1:
            raise ConfigError(f"clip_pool_tokens must be at least 1, got {clip_pool_tokens}")
        if clip_head not in CLIP_HEADS:
            raise ConfigError(f"unknown CLIP head {clip_head!r}; choose one of {', '.join(CLIP_HEADS)}")
        if _paper_layout(arch, channel_index, time_pool):
            # Keywords, not positions (why: MaskedSignalModel.__init__).
            self.encoder = EEGEncoder(n_chans=n_chans, n_times=n_times, sfreq=sfreq, patch_size=patch_size,
                                      embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                                      alibi=alibi, patch_init=patch_init, block_init=block_init,
                                      final_norm=final_norm)
            n_tokens = self.encoder.num_tokens
        else:
            self.encoder = TokenEncoder(arch, n_chans, n_times, sfreq, arch_options, channel_index, time_pool)
            n_tokens, embed_dim = self.encoder.num_tokens, self.encoder.token_dim
        # Token mapper: learned mixtures over the token axis (Conv1d channels = tokens).
        self.token_mapper = nn.Sequential(
            nn.Conv1d(n_tokens, mid_tokens, kernel_size=1),
            nn.Conv1d(mid_tokens, num_cond_tokens, kernel_size=1),
        )
        self.dim_mapper = nn.Linear(embed_dim, cross_attention_dim)
        self._build_clip_head(n_tokens, embed_dim, clip_dim)
        # clip_context: the CLIP head's prediction also enters every context token (a linear map, added to the
        # mapped tokens; zero at the start, so a new conditioner puts out the paper's context). The token mapper
        # reads each output token through ONE token mixture and one shared Linear, the bottleneck the CLIP head had
        # with one mixture; the CLIP prediction is a full linear read-out of every token, so through it the
        # context can say what the EEG decodes to (e.g. the base's caption context, --caption-weight).
        if clip_context:
            self.clip_context_proj = nn.Linear(clip_dim, num_cond_tokens * cross_attention_dim)
            nn.init.zeros_(self.clip_context_proj.weight)
            nn.init.zeros_(self.clip_context_proj.bias)
        else:
            self.clip_context_proj = None
        if time_embed_dim:
            half = max(1, num_cond_tokens // 2)
            self.time_cond = nn.Sequential(
                nn.Conv1d(num_cond_tokens, half, kernel_size=1),
                nn.Conv1d(half, 1, kernel_size=1),
                nn.Flatten(1),  # [B, 1, Dx] -> [B, Dx]
                nn.Linear(cross_attention_dim, time_embed_dim),
            )
        else:
            self.time_cond = None
        # Learned "no EEG" context for condition dropout and classifier-free guidance.
        self.null_cond = nn.Parameter(torch.randn(num_cond_tokens, cross_attention_dim) * 0.02)
        # Optional low-level guess of the VAE latents (not the paper's; :meth:`add_latent_decoder`).
        self.latent_decoder = LatentDecoder(n_chans, latent_bins, latent_shape) if latent_shape else None
        # Optional class context (not the paper's; models/class_reader.py): fitted in closed form, then held.
        self.class_reader = (ClassReader(n_chans, n_times, class_contexts, class_context_bins,
                                         (num_cond_tokens, cross_attention_dim)) if class_contexts else None)

    def _build_clip_head(self, n_tokens: int, embed_dim: int, clip_dim: int) -> None:
        """The CLIP head on the raw tokens (before the mapper), as the reference's `mapping`.

        The paper pools the tokens into ONE mixture (clip_pool_tokens=1), so a linear read-out of the tokens gets
        one temporal weighting shared by every feature: an evoked response whose components differ in latency AND
        topography then loses most of what tells images apart, and the warm-up finds the signal at some seeds and
        not at others. K > 1 mixtures (flattened, K * D -> CLIP) lift that bottleneck. clip_head="filters": the
        head :func:`filters_head` builds instead (the pool and its Linear are then None)."""
        cfg = self.config
        if cfg.clip_head == "pool":
            self.clip_pool = nn.Conv1d(n_tokens, cfg.clip_pool_tokens, kernel_size=1)
            self.clip_proj = nn.Linear(cfg.clip_pool_tokens * embed_dim, clip_dim)
            self.clip_filters = None
        else:
            self.clip_pool = self.clip_proj = None
            width, length = self.head_input_shape(cfg.clip_head)
            self.clip_filters = filters_head(width, length, clip_dim, cfg.clip_head_filters, cfg.clip_head_bins)
        hidden = int(cfg.get("clip_head_prior", 0) or 0)
        self.clip_prior = EmbeddingPrior(clip_dim, hidden) if hidden and cfg.clip_head != "pool" else None

    @property
    def paper_layout(self) -> bool:
        """The paper's transformer on every channel and sample (``encoder`` is then an :class:`EEGEncoder`)."""
        cfg = self.config
        return _paper_layout(cfg.get("arch", "msm"), cfg.get("channel_index"), cfg.get("time_pool", 1))

    # ----------------------------------------------------------------- construction helpers
    @classmethod
    def from_encoder(
        cls,
        encoder: EEGEncoder | str | os.PathLike,
        cross_attention_dim: int,
        clip_dim: int,
        time_embed_dim: int | None = None,
        final_norm: bool | str | None = None,
        **kwargs,
    ) -> "EEGConditioner":
        """A conditioner around a pretrained encoder (an ``EEGEncoder`` or its folder).

        ``final_norm``: None keeps the encoder's; True (or "layernorm") where the encoder has none adds a fresh
        LayerNorm (weight 1, bias 0), "affine" a fresh ``TokenAffine`` (the identity until
        ``EEGEncoder.calibrate_norm``), the rest of the encoder as trained; False drops the encoder's norm."""
        if not isinstance(encoder, EEGEncoder):
            encoder = load_encoder(encoder)
        enc_cfg = {k: encoder.config[k] for k in ENCODER_CONFIG_KEYS}
        if final_norm is not None:
            enc_cfg["final_norm"] = final_norm if isinstance(final_norm, str) else bool(final_norm)
        model = cls(**enc_cfg, cross_attention_dim=cross_attention_dim, clip_dim=clip_dim,
                    time_embed_dim=time_embed_dim, **kwargs)
        state = encoder.state_dict()
        if final_norm_kind(model.config.final_norm) != final_norm_kind(encoder.config.final_norm):  # another kind: a fresh one
            state = {k: v for k, v in state.items() if not k.startswith("norm.")}
        missing, unexpected = model.encoder.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("norm.") for k in missing):  # only a norm Stage A did not have
            raise ConfigError(f"the encoder's weights do not fit its config: missing {missing}, unexpected {unexpected}")
        return model

    @classmethod
    def from_preset(
        cls, preset: str, n_chans: int, n_times: int, sfreq: float, cross_attention_dim: int, clip_dim: int,
        time_embed_dim: int | None = None, patch_size: int = 4, **kwargs,
    ) -> "EEGConditioner":
        """Randomly initialised encoder of a preset: the paper's no-pretraining ablation."""
        if preset not in PRESETS:
            raise ConfigError(f"unknown encoder preset {preset!r}; choose one of {', '.join(PRESETS)}", preset)
        enc = {k: PRESETS[preset][k] for k in ENCODER_KEYS + ENCODER_OPTION_KEYS if k in PRESETS[preset]}
        return cls(n_chans=n_chans, n_times=n_times, sfreq=sfreq, patch_size=patch_size, **enc,
                   cross_attention_dim=cross_attention_dim, clip_dim=clip_dim, time_embed_dim=time_embed_dim,
                   **kwargs)

    @classmethod
    def from_arch(
        cls, arch: str, n_chans: int, n_times: int, sfreq: float, cross_attention_dim: int, clip_dim: int,
        time_embed_dim: int | None = None, arch_options: dict | None = None, **kwargs,
    ) -> "EEGConditioner":
        """A randomly initialised encoder of one of the field's architectures (``finetune --encoder-arch``)."""
        return cls(n_chans=n_chans, n_times=n_times, sfreq=sfreq, arch=arch, arch_options=arch_options,
                   cross_attention_dim=cross_attention_dim, clip_dim=clip_dim, time_embed_dim=time_embed_dim,
                   **kwargs)

    @classmethod
    def from_aligned(
        cls, aligned: AlignedEncoder, cross_attention_dim: int, clip_dim: int, time_embed_dim: int | None = None,
        **kwargs,
    ) -> "EEGConditioner":
        """A conditioner around the backbone of ``dreamdiffusion align``'s encoder (its projector is not kept:
        the CLIP head here is new, as with a pretrained transformer). Its channel pick and time pooling stay."""
        cfg = aligned.config
        if _paper_layout(cfg.arch, cfg.channel_index, cfg.time_pool):
            return cls.from_encoder(aligned.backbone.encoder, cross_attention_dim, clip_dim, time_embed_dim, **kwargs)
        model = cls(n_chans=cfg.in_chans, n_times=cfg.in_times, sfreq=cfg.in_sfreq, arch=cfg.arch,
                    arch_options=cfg.arch_options, channel_index=cfg.channel_index, time_pool=cfg.time_pool,
                    cross_attention_dim=cross_attention_dim, clip_dim=clip_dim, time_embed_dim=time_embed_dim,
                    **kwargs)
        model.encoder.load_backbone(aligned)
        return model

    # ----------------------------------------------------------------------------- forward
    def check_eeg(self, eeg: torch.Tensor, source: str | os.PathLike | None = None) -> None:
        """Raise :class:`ConfigError` naming ``source`` when ``eeg`` does not fit the model."""
        check_eeg_shape(eeg.shape, self.config.n_chans, self.config.n_times, self.config.sfreq, source)

    def forward(self, eeg: torch.Tensor, class_scale: float = 1.0) -> ConditionerOutput:
        self.check_eeg(eeg)
        return self.from_tokens(self.encoder(eeg.to(self.dtype)), eeg, class_scale)  # tokens [B, N, D]

    def from_tokens(self, tokens: torch.Tensor, eeg: torch.Tensor | None = None,
                    class_scale: float = 1.0) -> ConditionerOutput:
        """What :meth:`forward` gives for the encoder's ``tokens [B, N, D]`` of ``eeg``: the mappers and the CLIP head
        alone (a caller holding the encoder still computes its tokens once; ``eeg`` is needed by the ``eeg`` head and
        the class context). ``class_scale``: the class context's weight (trained at 1; the pipeline may sample at
        another, ``generation.json``'s ``class_context_scale``)."""
        cond = self.dim_mapper(self.token_mapper(tokens))  # [B, 77, D] -> [B, 77, Dx]
        clip_embeds = self.clip_embeds(tokens, eeg)
        if self.clip_context_proj is not None:
            cond = cond + self.clip_context_proj(clip_embeds).view_as(cond)
        if self.class_reader is not None:
            if eeg is None:
                raise ConfigError("this conditioner's class context reads the EEG window: pass it beside the tokens")
            cond = cond + float(class_scale) * self.class_reader(eeg).to(cond.dtype)
        return ConditionerOutput(cond=cond, clip_embeds=clip_embeds, tokens=tokens)

    def clip_embeds(self, tokens: torch.Tensor, eeg: torch.Tensor | None = None) -> torch.Tensor:
        """The CLIP head's prediction ``[B, P]`` from the encoder's tokens ``[B, N, D]`` (``clip_head="eeg"``: from
        the EEG window ``eeg [B, C, T]`` the tokens were made of)."""
        if self.clip_filters is None:
            return self.clip_proj(self.clip_pool(tokens).flatten(1))  # [B, K, D] -> [B, K * D] -> [B, P]
        # The filters head ends in a LayerNorm; its direction is the prediction, and clip_head_scale gives it the
        # length the pooled head's predictions had, which the context's linear read (clip_context) was fitted on.
        if self.config.clip_head == "eeg":
            if eeg is None:
                raise ConfigError("the CLIP head of this conditioner reads the EEG window: pass it beside the tokens")
            out = self.clip_filters(eeg.to(self.dtype))
        else:
            out = self.clip_filters(tokens.transpose(1, 2))
        scale = float(self.config.clip_head_scale)
        pred = F.normalize(out, dim=-1) * scale
        if self.clip_prior is not None:  # the fitted head's prior: its direction, at the same length
            pred = F.normalize(self.clip_prior(pred), dim=-1) * scale
        return pred

    def token_shape(self) -> tuple[int, int]:
        """``(N, D)`` of the encoder's tokens ``[B, N, D]``."""
        enc = self.encoder
        return int(enc.num_tokens), int(getattr(enc, "token_dim", None) or enc.config.embed_dim)

    def head_input_shape(self, kind: str) -> tuple[int, int]:
        """``(width, length)`` of what a fitted CLIP head of ``kind`` reads: the tokens' ``(D, N)`` for ``filters``,
        the EEG window's ``(C, T)`` for ``eeg``."""
        if kind == "eeg":
            return int(self.config.n_chans), int(self.config.n_times)
        n_tokens, width = self.token_shape()
        return width, n_tokens

    def clip_head_modules(self) -> list[nn.Module]:
        """The modules of the CLIP head in use (to freeze or train it as one)."""
        return [m for m in (self.clip_pool, self.clip_proj, self.clip_filters, self.clip_prior) if m is not None]

    def use_filters_head(self, head: AlignedEncoder, scale: float, kind: str = "filters",
                         prior: EmbeddingPrior | None = None) -> None:
        """Replace the CLIP head by ``head`` (a trained :func:`filters_head` of this encoder's tokens, or with
        ``kind="eeg"`` of the EEG window, as ``training/clip_head_refit.py`` fits it), its unit prediction times
        ``scale``; with ``prior``, that prediction then goes through it (its output's direction, at the same length)."""
        if kind not in CLIP_HEADS[1:]:
            raise ConfigError(f"a fitted CLIP head is 'filters' or 'eeg', got {kind!r}")
        opts = head.config.arch_options or {}
        new = filters_head(head.config.in_chans, head.config.in_times, head.config.clip_dim,
                           int(opts.get("spatial_filters", 0)), head.config.in_times // head.config.time_pool)
        new.load_state_dict(head.state_dict())
        self.clip_pool = self.clip_proj = None
        self.clip_filters = new.to(self.device, self.dtype)
        self.clip_prior = None if prior is None else prior.to(self.device, self.dtype)
        self.register_to_config(clip_head=kind, clip_head_filters=int(opts.get("spatial_filters", 0)),
                                clip_head_bins=new.n_times, clip_head_scale=float(scale),
                                clip_head_prior=0 if prior is None else prior.hidden)

    def use_class_reader(self, weight, bias, contexts, bins: int) -> ClassReader:
        """Add a :class:`ClassReader` with the discriminant ``weight [K, C * bins]``, ``bias [K]`` and the class
        contexts ``[K, L, D]``; recorded in the config, so the saved model rebuilds it. Held (no gradient)."""
        cfg = self.config
        reader = ClassReader(cfg.n_chans, cfg.n_times, len(contexts), bins, tuple(self.null_cond.shape))
        reader.load_fit(weight, bias, contexts)
        self.class_reader = reader.to(self.device, self.dtype).requires_grad_(False)
        self.register_to_config(class_contexts=len(contexts), class_context_bins=int(bins))
        return self.class_reader

    def null_condition(self, batch_size: int) -> torch.Tensor:
        """The learned no-EEG context, ``[B, 77, Dx]``."""
        return self.null_cond.unsqueeze(0).expand(batch_size, -1, -1)

    def drop_condition(self, cond: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Replace the rows of ``cond`` where ``drop`` ([B] bool) is set by the null context.

        ``torch.where`` keeps ``null_cond`` in the graph even when nothing is dropped, so
        distributed training never sees it as an unused parameter.
        """
        null = self.null_condition(cond.shape[0]).to(cond.dtype)
        return torch.where(drop.view(-1, 1, 1), null, cond)

    def time_embedding(self, cond: torch.Tensor) -> torch.Tensor | None:
        """Pooled context -> ``[B, time_embed_dim]`` added to the UNet's timestep embedding."""
        if self.time_cond is None:
            return None
        return self.time_cond(cond.to(self.dtype))

    @contextlib.contextmanager
    def conditioning(self, unet: nn.Module, cond: torch.Tensor):
        """While active, ``unet.time_embedding``'s output gets :meth:`time_embedding` ``(cond)`` added.

        ``cond`` must be the same ``[B, 77, Dx]`` batch passed as ``encoder_hidden_states``.
        Without time conditioning this is a no-op.
        """
        extra = self.time_embedding(cond)
        if extra is None:
            yield
            return
        time_embedding = getattr(unet, "time_embedding", None)
        if time_embedding is None:
            raise ConfigError("time conditioning needs a UNet with a `time_embedding` module "
                              "(turn it off with --no-time-conditioning)")

        def add(_module, _inputs, output):
            if output.shape[0] != extra.shape[0]:
                raise RuntimeError(f"time conditioning batch {extra.shape[0]} != UNet batch {output.shape[0]}")
            return output + extra.to(output.dtype)

        handle = time_embedding.register_forward_hook(add)
        try:
            yield
        finally:
            handle.remove()


def filters_head(width: int, n_tokens: int, clip_dim: int, filters: int, bins: int,
                 dropout: float = 0.0) -> AlignedEncoder:
    """The ``filters`` CLIP head on tokens ``[B, N, D]`` (given as ``[B, D, N]``): ``filters`` learned mixtures of
    the D token features, the N tokens averaged into ``bins`` time bins, then UBP's projector. It is the modern
    recipe's linear aligner (:class:`AlignedEncoder`, arch ``linear``) with the tokens in place of the channels, so
    the alignment's ridge start and training loop (``training/align.py``) fit it as they are. The ``eeg`` head is
    the same on the EEG window ``[B, C, T]`` (``width`` C channels, ``n_tokens`` T samples)."""
    if not 1 <= bins <= n_tokens:
        raise ConfigError(f"clip_head_bins must be in [1, {n_tokens}] (the head's input length), got {bins}")
    if filters < 0 or filters > width:
        raise ConfigError(f"clip_head_filters must be in [0, {width}] (the head's input width), got {filters}")
    return AlignedEncoder(arch="linear", in_chans=width, in_times=n_tokens, in_sfreq=1.0, clip_dim=clip_dim,
                          time_pool=n_tokens // bins, arch_options={"spatial_filters": filters} if filters else None,
                          proj_dropout=dropout)


def load_encoder(path: str | os.PathLike, aligned: bool = False) -> EEGEncoder | AlignedEncoder:
    """An :class:`EEGEncoder` from a folder holding an ``EEGEncoder`` or a whole ``MaskedSignalModel``.

    Pretraining writes either; a folder with an ``encoder/`` subfolder is accepted too. The output of
    ``dreamdiffusion align`` gives its MSM transformer, or with ``aligned`` the whole
    :class:`~dreamdiffusion.models.encoders.AlignedEncoder` of any architecture (for
    :meth:`EEGConditioner.from_aligned`).
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError("encoder folder not found (pass the output folder of `dreamdiffusion pretrain`, "
                          "or --encoder none for the no-pretraining ablation)", path)
    if path.is_dir() and not (path / "config.json").is_file():
        for sub in ("encoder", "model", "final"):
            if (path / sub / "config.json").is_file():
                return load_encoder(path / sub, aligned)
        raise ConfigError("no config.json here: not an EEG encoder folder", path)
    config_file = path / "config.json" if path.is_dir() else path
    config = read_json_config(config_file, "the encoder config")
    check_model_folder(config_file.parent)
    class_name = config.get("_class_name")
    if class_name == ALIGNED_CONFIG_NAME:  # the output of `dreamdiffusion align`
        return load_aligned_encoder(config_file.parent) if aligned else _msm_of_aligned(config_file.parent, config)
    if class_name == "EEGConditioner" and not _paper_layout(config.get("arch", "msm"), config.get("channel_index"),
                                                            config.get("time_pool", 1)):
        raise ConfigError(f"this conditioner's encoder is {config.get('arch')!r} (channels "
                          f"{config.get('channel_index') or 'all'}, time pool {config.get('time_pool', 1)}), "
                          "not the paper's transformer on every channel and sample", config_file)
    # the option keys (alibi, ...) are newer than many folders: absent means the paper's default
    missing = [k for k in ENCODER_CONFIG_KEYS if k not in config and k not in ENCODER_OPTION_KEYS]
    if class_name not in ("EEGEncoder", "MaskedSignalModel", "EEGConditioner") or missing:
        raise ConfigError(
            f"not an EEG encoder config (class {class_name!r}"
            + (f", missing {', '.join(missing)}" if missing else "") + ")", config_file)
    folder = config_file.parent
    cls = {"EEGEncoder": EEGEncoder, "MaskedSignalModel": MaskedSignalModel, "EEGConditioner": EEGConditioner}[class_name]
    try:
        model = cls.from_pretrained(folder, low_cpu_mem_usage=False, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot load the encoder: {str(exc).splitlines()[0]} "
                          "(is this folder from an incompatible config or a different version?)", folder) from exc
    return model.encoder if class_name != "EEGEncoder" else model


def _msm_of_aligned(folder: Path, config: dict) -> EEGEncoder:
    """The transformer inside an aligned encoder, for the paper's conditioner (which reads every channel and sample)."""
    if config.get("arch") != "msm" or config.get("channel_index") or int(config.get("time_pool", 1)) != 1:
        raise ConfigError(
            f"this aligned encoder ({config.get('arch')!r}, channels {config.get('channel_names') or 'all'}, time pool "
            f"{config.get('time_pool', 1)}) cannot become the paper's transformer: that needs --encoder-arch msm on "
            "every channel with --time-pool 1 (`finetune --encoder` takes it whole; so does the image-embedding "
            "route)", folder)
    return load_aligned_encoder(folder).backbone.encoder


__all__ = ["EEGConditioner", "ConditionerOutput", "LatentDecoder", "LatentGuessMixin", "load_encoder", "ENCODER_CONFIG_KEYS"]
