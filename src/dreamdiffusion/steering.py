"""Steering the images toward the EEG's predicted CLIP embedding: best-of-N selection and CLIP guidance.

Both models predict, beside what conditions the generator, the CLIP image embedding of the image the EEG was
recorded for (:meth:`DreamDiffusionPipeline.encode_eeg`: a tokens pipeline's CLIP head, an ip-adapter pipeline's
aligned prediction). A sample is one draw from everything the conditioning allows, and the conditioning may carry
the EEG less well than that prediction does (the paper recipe's CLIP head identifies the own val image 2-way ~0.89
of the time, its images ~0.65). Two ways to bring the images closer to the prediction, neither of which ever sees a
ground-truth image, so both are part of the generator and ``evaluate`` scores them as such:

- **best-of-N** (:class:`ClipRanker`, ``--candidates N``): draw N images and keep the one whose CLIP embedding is
  closest (cosine) to the prediction (MindEye's selection, Scotti et al. 2023). N times the sampling.
- **CLIP guidance** (:class:`ClipGuidance`, ``--clip-guidance S``): after every sampler step, move the latents
  along the gradient of the cosine between the CLIP embedding of their decoded image and the prediction, by ``S``
  times the latents' norm (the gradient-of-a-scorer idea of classifier guidance, with CLIP as the scorer and the
  decoded current latents standing in for the clean image). One VAE decode and one CLIP forward and backward pass
  per step. ``--clip-guidance-steps K`` takes K such moves per sampler step, the gradient read again before each:
  the image's CLIP embedding bends away from a straight line as the latents move, so K short moves reach closer to
  the prediction than one long one (K passes per step).

A caveat for reading the numbers: both push the images toward what the CLIP given here prefers, so the CLIP-space
metrics of ``evaluate`` (when they use the same CLIP) rise by construction; the independent judge and the pixel
metrics say whether the images themselves changed. ``generate``, ``evaluate`` and the demo expose both;
:func:`dreamdiffusion.generation.draw_images` applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models import hub


def _load(clip, device):
    model = hub.load_clip(clip) if isinstance(clip, str) else clip
    model.model.eval().to(device)
    return model


def predicted_embeddings(pipe, eegs: torch.Tensor, width: int, what: str) -> torch.Tensor:
    """The unit-length predicted CLIP image embeddings ``[B, P]`` of ``eegs``, checked against the CLIP's width."""
    target = F.normalize(pipe.encode_eeg(eegs)[1].float(), dim=-1)
    if target.shape[-1] != width:
        raise ConfigError(f"{what}: the model predicts {target.shape[-1]}-wide CLIP image embeddings, the CLIP "
                          f"given gives {width}-wide ones: pass the CLIP the model was trained against (--clip)")
    return target


class ClipRanker:
    """Ranks candidate images by CLIP cosine to the EEG's predicted CLIP image embedding.

    ``clip``: a CLIP spec (``builtin-tiny``, a hub id or a folder) or an already loaded
    :class:`~dreamdiffusion.models.hub.ClipModel`; it must be the CLIP the EEG model was aligned against, so that
    the predicted embedding and the candidates' embeddings live in one space.
    """

    def __init__(self, clip, device: str | torch.device = "cpu"):
        self.clip = _load(clip, device)
        self.source = getattr(self.clip, "source", None)

    @torch.no_grad()
    def scores(self, pipe, eegs: torch.Tensor, rows: Sequence[Sequence[Image.Image]],
               target: torch.Tensor | None = None) -> torch.Tensor:
        """``[len(rows), n]``: cosine of each row's candidates to the predicted embedding of its EEG (``target``:
        those embeddings when the caller has them already, unit rows)."""
        n = len(rows[0])
        flat = [im for row in rows for im in row]
        embeds = hub.clip_image_embeds(flat, self.clip.model, self.clip.processor, normalize=True, batch_size=64)
        if target is None:
            target = predicted_embeddings(pipe, eegs, embeds.shape[-1], "--candidates")
        target = target.cpu()
        return (embeds.cpu().reshape(len(rows), n, -1) * target[:, None]).sum(-1)

    def select(self, pipe, eegs: torch.Tensor, rows: Sequence[Sequence[Image.Image]], keep: int,
               target: torch.Tensor | None = None) -> list[list[Image.Image]]:
        """The ``keep`` best candidates of each row, best first."""
        order = self.scores(pipe, eegs, rows, target).argsort(dim=-1, descending=True)[:, :keep]
        return [[row[j] for j in idx.tolist()] for row, idx in zip(rows, order)]


class ClipGuidance:
    """CLIP guidance toward the EEG's predicted CLIP image embedding, as a pipeline ``callback_on_step_end``.

    ``scale``: the length of each latent update as a share of the latents' norm (per image; 0.1 moves them by a
    tenth), along the unit gradient of ``cos(CLIP(decode(latents)), prediction)``; ``steps`` such updates after
    every sampler step, each from the gradient at the latents the previous one left. ``clip`` as for
    :class:`ClipRanker`.
    """

    def __init__(self, clip, scale: float, device: str | torch.device = "cpu", steps: int = 1):
        if not scale > 0:
            raise ConfigError(f"--clip-guidance must be above 0 (0 switches it off), got {scale}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"--clip-guidance-steps must be a whole number of at least 1, got {steps}")
        self.clip = _load(clip, device)
        self.source = getattr(self.clip, "source", None)
        self.scale = float(scale)
        self.steps = steps
        proc = self.clip.processor
        crop = getattr(proc, "crop_size", None) or {}
        size = (int(crop.get("height", self.clip.model.config.image_size)),
                int(crop.get("width", self.clip.model.config.image_size)))
        self._size = size
        self._mean = torch.tensor(proc.image_mean, dtype=torch.float32)[None, :, None, None]
        self._std = torch.tensor(proc.image_std, dtype=torch.float32)[None, :, None, None]

    def width(self) -> int:
        return int(self.clip.model.config.projection_dim)

    def callback(self, target: torch.Tensor, then: Callable | None = None) -> Callable:
        """A ``callback_on_step_end`` that guides latents ``[len(target), C, h, w]`` toward ``target`` (unit rows,
        one per image drawn), then calls ``then`` (e.g. a progress bar) with the guided latents."""

        def step(pipe, i, t, kwargs):
            latents = kwargs["latents"]
            for _ in range(self.steps):
                latents = self.guide(pipe, latents, target)
            out = then(pipe, i, t, {**kwargs, "latents": latents}) if then is not None else None
            return out if out and "latents" in out else {"latents": latents}

        return step

    def guide(self, pipe, latents: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``latents`` moved by ``scale`` x their norm along the gradient of the CLIP cosine to ``target``."""
        with torch.enable_grad():  # the pipeline samples under no_grad
            x = latents.detach().float().requires_grad_(True)
            vae = pipe.vae
            image = vae.decode((x / vae.config.scaling_factor).to(vae.dtype)).sample.float()
            image = F.interpolate((image / 2 + 0.5).clamp(0, 1), size=self._size, mode="bilinear",
                                  align_corners=False, antialias=True)
            model = self.clip.model
            device = next(model.parameters()).device
            pixels = ((image.to(device) - self._mean.to(device)) / self._std.to(device)).to(model.dtype)
            embeds = F.normalize(model(pixel_values=pixels).image_embeds.float(), dim=-1)
            (grad,) = torch.autograd.grad((embeds * target.to(embeds.device)).sum(), x)
        shape = (-1,) + (1,) * (grad.ndim - 1)
        unit = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)
        step = self.scale * latents.float().flatten(1).norm(dim=1).view(shape) * unit
        return (latents.float() + step.to(latents.device)).to(latents.dtype)


__all__ = ["ClipGuidance", "ClipRanker", "predicted_embeddings"]
