"""The modern recipe's EEG model inside a pipeline: an aligned encoder's predicted CLIP image embedding.

:class:`ImageEmbeddingConditioner` wraps an :class:`~dreamdiffusion.models.encoders.AlignedEncoder` (the output
of ``dreamdiffusion align``) so that an ``ip-adapter`` :class:`~dreamdiffusion.pipeline.DreamDiffusionPipeline`
holds it as its ``eeg_conditioner`` with the paper conditioner's interface (``check_eeg``, ``n_chans`` /
``n_times`` / ``sfreq`` in its config, ``forward -> ConditionerOutput``, ``null_condition``, ``conditioning``):
generate, evaluate, the web app and the stream use either kind the same way.

- ``clip_embeds`` = the encoder's ``embed`` (unit direction x the CLIP targets' mean norm), optionally through
  ``prior``: a residual MLP from that embedding to the CLIP image embedding (an MLP prior, as ATM's diffusion
  prior's simpler sibling), used only where val says it helps;
- ``cond`` = ``null_cond``, the base's empty-prompt context (fixed, not trained): in the IP-Adapter route the
  image tokens carry the EEG and the text context is constant;
- optionally ``latent_decoder``: a linear map from the EEG binned in time to the VAE latents of the image seen
  (ATM's low-level route: a blurry guess of the layout, which the pipeline noises part-way and denoises under the
  IP-Adapter, img2img-style; :meth:`init_latents`). Fitted in closed form by
  :func:`dreamdiffusion.training.prior.fit_latent_decoder`.

The wrapped encoder's own config is kept as ``encoder_config`` in this model's ``config.json`` (JSON only).
Pure model file.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from dreamdiffusion.core.errors import check_eeg_shape
from dreamdiffusion.models.conditioner import ConditionerOutput, LatentDecoder, LatentGuessMixin
from dreamdiffusion.models.encoders import AlignedEncoder, EmbeddingPrior


class ImageEmbeddingConditioner(LatentGuessMixin, ModelMixin, ConfigMixin):
    """EEG window ``[B, n_chans, n_times]`` -> predicted CLIP image embedding + the constant prompt context."""

    @register_to_config
    def __init__(self, encoder_config: dict, cross_attention_dim: int = 768, num_cond_tokens: int = 77,
                 prior_hidden: int = 0, n_chans: int = 128, n_times: int = 512, sfreq: float = 512 / 0.44,
                 latent_shape: list[int] | None = None, latent_bins: int = 16):
        super().__init__()
        self.encoder = AlignedEncoder.from_config({k: v for k, v in encoder_config.items() if not k.startswith("_")})
        clip_dim = self.encoder.config.clip_dim
        self.prior = EmbeddingPrior(clip_dim, prior_hidden) if prior_hidden else None
        # The base's empty prompt (set by DreamDiffusionPipeline.from_ip_adapter); saved, never trained.
        self.null_cond = nn.Parameter(torch.zeros(num_cond_tokens, cross_attention_dim), requires_grad=False)
        self.latent_decoder = LatentDecoder(n_chans, latent_bins, latent_shape) if latent_shape else None

    @classmethod
    def from_encoder(cls, encoder: AlignedEncoder, cross_attention_dim: int, num_cond_tokens: int = 77,
                     prior_hidden: int = 0, latent_shape: list[int] | None = None,
                     latent_bins: int = 16) -> ImageEmbeddingConditioner:
        """A conditioner around a trained aligned encoder (its weights copied); ``latent_shape`` adds an (untrained)
        :class:`LatentDecoder` of that output shape."""
        cfg = encoder.config
        own = {k: v for k, v in cfg.items() if not k.startswith("_")}  # not diffusers' bookkeeping (paths)
        model = cls(own, cross_attention_dim, num_cond_tokens, prior_hidden,
                    n_chans=cfg.in_chans, n_times=cfg.in_times, sfreq=cfg.in_sfreq,
                    latent_shape=list(latent_shape) if latent_shape else None, latent_bins=latent_bins)
        model.encoder.load_state_dict(encoder.state_dict())
        return model.eval()

    def check_eeg(self, eeg: torch.Tensor, source=None) -> None:
        check_eeg_shape(eeg.shape, self.config.n_chans, self.config.n_times, self.config.sfreq, source)

    def embed(self, eeg: torch.Tensor) -> torch.Tensor:
        """The aligned encoder's prediction ``[B, clip_dim]`` before the prior: unit direction x target norm."""
        return F.normalize(self.encoder(eeg.to(self.dtype)).float(), dim=-1) * float(self.encoder.config.target_scale)

    def forward(self, eeg: torch.Tensor) -> ConditionerOutput:
        self.check_eeg(eeg)
        pred = self.embed(eeg)
        if self.prior is not None:
            pred = self.prior(pred)
        return ConditionerOutput(cond=self.null_condition(len(eeg)), clip_embeds=pred, tokens=pred[:, None])

    def null_condition(self, batch_size: int) -> torch.Tensor:
        """The constant prompt context ``[B, 77, Dx]``."""
        return self.null_cond.unsqueeze(0).expand(batch_size, -1, -1)

    def conditioning(self, unet, cond: torch.Tensor):
        """No time conditioning in this route: a no-op context, as the paper conditioner's without it."""
        return contextlib.nullcontext()


__all__ = ["ImageEmbeddingConditioner", "EmbeddingPrior", "LatentDecoder"]
