"""Image-side tricks of contrastive EEG-CLIP alignment: what the image looks like before CLIP sees it.

- **Blur** (UBP, Wu et al. CVPR 2025): EEG carries the coarse layout of a briefly flashed image, not
  its fine detail, so the image target is blurred before CLIP; UBP's uncertainty-aware variant picks a
  weaker or stronger blur per trial (see :mod:`dreamdiffusion.training.align`). Here a Gaussian blur whose
  sigma is a fraction of the image width (UBP: a 51-pixel kernel on 224-pixel images, sigma ~ 0.04).
- **Views** (NeuroBridge, AAAI 2026): the target is the mean CLIP embedding of several degraded views of
  the image (blurred, noised, low resolution, mosaic), which keeps what survives every degradation.

PIL + numpy only (torchvision does not work beside this torch build). Every random draw comes from a
generator seeded by the caller, so targets are a function of the seed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

VIEW_KINDS = ("blur", "noise", "lowres", "mosaic")


def blur_image(image: Image.Image, sigma: float) -> Image.Image:
    """Gaussian blur with sigma = ``sigma`` x the image width (0: the image unchanged)."""
    if sigma <= 0:
        return image
    return image.filter(ImageFilter.GaussianBlur(radius=sigma * image.width))


def _noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    x = np.asarray(image.convert("RGB"), dtype=np.float32)
    x = x + rng.normal(0.0, rng.uniform(10.0, 40.0), x.shape)  # pixel units (0-255)
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def _resample(image: Image.Image, factor: float, down: Image.Resampling, up: Image.Resampling) -> Image.Image:
    w, h = image.size
    small = image.resize((max(1, round(w * factor)), max(1, round(h * factor))), down)
    return small.resize((w, h), up)


def degraded_view(image: Image.Image, kind: str, rng: np.random.Generator) -> Image.Image:
    """One NeuroBridge-style view of ``image``: ``blur``, ``noise``, ``lowres`` (smooth) or ``mosaic`` (blocky)."""
    image = image.convert("RGB")
    if kind == "blur":
        return blur_image(image, rng.uniform(0.02, 0.06))
    if kind == "noise":
        return _noise(image, rng)
    if kind == "lowres":
        return _resample(image, rng.uniform(0.15, 0.4), Image.Resampling.BILINEAR, Image.Resampling.BILINEAR)
    if kind == "mosaic":
        return _resample(image, rng.uniform(0.1, 0.25), Image.Resampling.BOX, Image.Resampling.NEAREST)
    raise ValueError(f"unknown view kind {kind!r}; choose one of {', '.join(VIEW_KINDS)}")


def degraded_views(image: Image.Image, n: int, rng: np.random.Generator) -> list[Image.Image]:
    """``n`` views cycling through :data:`VIEW_KINDS` (so 4 views = one of each)."""
    return [degraded_view(image, VIEW_KINDS[i % len(VIEW_KINDS)], rng) for i in range(n)]


__all__ = ["VIEW_KINDS", "blur_image", "degraded_view", "degraded_views"]
