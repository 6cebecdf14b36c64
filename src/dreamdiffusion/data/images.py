"""Images of EEG-image pairs: safe loading, the paper's preprocessing, and batching.

DreamDiffusion feeds each paired image two ways (reference ``dataset.py`` / ``eeg_ldm.py``):

* to the VAE: RGB, resized to the model's resolution without keeping the aspect ratio, mapped to
  [-1, 1]; in training only, with probability 0.5 a random square crop of side
  ``resolution - int(0.2 * resolution)`` is resized back to the resolution (crop-and-resize
  augmentation);
* to CLIP: the raw image through CLIP's own image processor (resize 224, centre crop, CLIP mean and
  std), never augmented.

Everything here is PIL + numpy + torch: torchvision does not work beside this torch build.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dreamdiffusion.core.errors import DataError

log = logging.getLogger(__name__)

# Failures PIL raises on files that are not (whole) images. DecompressionBombError subclasses
# Exception directly, so it is listed on its own.
# Decoders of malformed files also surface as struct.error, IndexError or KeyError (seen in fuzzing).
_PIL_FAILURES = (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError,
                 Image.DecompressionBombError, TypeError, IndexError, KeyError, struct.error)


def load_image(path: str | os.PathLike) -> Image.Image:
    """Read ``path`` fully and return it as an RGB ``PIL.Image``.

    A missing file, a file that is not an image, or a truncated/corrupt one raises
    :class:`DataError` naming the file: a pair is never silently given noise or a blank image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("image not found (check the image folder option and the dataset's image names)", path)
    try:
        # verify() checks the file's structure without decoding; load() then decodes every pixel,
        # which is what catches truncated JPEG data. verify() leaves the object unusable, so reopen.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as probe:
                probe.verify()
            with Image.open(path) as img:
                img.load()
                if img.width < 1 or img.height < 1:
                    raise ValueError("image has no pixels")
                rgb = img.convert("RGB")
    except Image.DecompressionBombWarning as exc:
        raise DataError(f"image is implausibly large and was refused ({exc})", path) from None
    except _PIL_FAILURES as exc:
        raise DataError(f"not a readable image ({type(exc).__name__}: {exc}); replace or re-download the file",
                        path) from None
    return rgb


def _size_pair(resolution: int | Sequence[int]) -> tuple[int, int]:
    """``resolution`` as ``(height, width)``."""
    if isinstance(resolution, (int, np.integer)):
        h = w = int(resolution)
    else:
        h, w = (int(v) for v in resolution)
    if h < 1 or w < 1:
        raise ValueError(f"resolution must be positive, got {resolution!r}")
    return h, w


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB ``PIL.Image`` -> float32 ``[3, H, W]`` in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)  # [H, W, 3] in 0..255
    return torch.from_numpy(array / 127.5 - 1.0).permute(2, 0, 1).contiguous()


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Inverse of :func:`pil_to_tensor` (clamped), for saving ground truths beside samples."""
    array = ((tensor.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())


@dataclass
class ImageTransform:
    """The paper's image preprocessing for the diffusion branch.

    ``ImageTransform(512, train=True)(pil_image) -> float32 [3, 512, 512] in [-1, 1]``.

    Parameters
    ----------
    resolution : int or (height, width)
        The model's image size (SD 1.5: 512).
    train : bool
        Apply the random crop-and-resize augmentation (training only; validation and test images
        are only resized).
    crop_ratio : float
        The crop's side is ``resolution - int(crop_ratio * resolution)`` (paper: 0.2, 512 -> 410).
    crop_p : float
        Probability of cropping an image (paper: 0.5).
    generator : torch.Generator, optional
        Source of randomness; by default torch's global one, which DataLoader seeds per worker.
    """

    resolution: int | tuple[int, int]
    train: bool = False
    crop_ratio: float = 0.2
    crop_p: float = 0.5
    generator: torch.Generator | None = None
    # Bilinear with PIL's antialiasing, as torchvision's Resize does on PIL images.
    resample: int = Image.Resampling.BILINEAR

    def __post_init__(self):
        self.size = _size_pair(self.resolution)
        if not 0.0 <= self.crop_ratio < 1.0:
            raise ValueError(f"crop_ratio must be in [0, 1), got {self.crop_ratio}")
        if not 0.0 <= self.crop_p <= 1.0:
            raise ValueError(f"crop_p must be in [0, 1], got {self.crop_p}")

    def _rand(self) -> float:
        return float(torch.rand((), generator=self.generator))

    def _randint(self, high: int) -> int:
        return int(torch.randint(0, high + 1, (), generator=self.generator))

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.apply(image)[0]

    def apply(self, image: Image.Image) -> tuple[torch.Tensor, bool]:
        """``(tensor, augmented)``: whether this draw cropped the image (an un-augmented image is only resized, so
        whatever is computed from it by a frozen model, e.g. its VAE posterior, is the same at every step)."""
        h, w = self.size
        image = image.convert("RGB").resize((w, h), self.resample)
        augmented = bool(self.train and self.crop_p > 0 and self._rand() < self.crop_p)
        if augmented:
            ch, cw = h - int(self.crop_ratio * h), w - int(self.crop_ratio * w)
            top, left = self._randint(h - ch), self._randint(w - cw)
            image = image.crop((left, top, left + cw, top + ch)).resize((w, h), self.resample)
        return pil_to_tensor(image), augmented


def make_clip_processor(image_size: int = 224):
    """A transformers ``CLIPImageProcessor`` with CLIP's own settings at ``image_size``.

    For a real CLIP model load the processor saved with it instead
    (``CLIPImageProcessor.from_pretrained(path_or_hub_id)``); this helper serves models built from
    config (the built-in tiny CLIP), whose folders may not hold one.
    """
    import importlib.util

    import transformers

    # Without torchvision, transformers' CLIPImageProcessor falls back to its PIL twin with a
    # warning (even on attribute access); take the twin directly (same settings, same outputs,
    # saved under the same processor type).
    if importlib.util.find_spec("torchvision") is None and hasattr(transformers, "CLIPImageProcessorPil"):
        cls = transformers.CLIPImageProcessorPil
    else:
        cls = transformers.CLIPImageProcessor
    return cls(size={"shortest_edge": int(image_size)},
               crop_size={"height": int(image_size), "width": int(image_size)})


def clip_pixel_values(images: Sequence[Image.Image] | Image.Image, processor) -> torch.Tensor:
    """CLIP's own preprocessing of the raw images: ``[B, 3, S, S]`` float32 ``pixel_values``.

    ``processor`` is a transformers image processor (``CLIPImageProcessor``) or a processor
    holding one (``CLIPProcessor`` / ``AutoProcessor``); it is called with ``images=``.
    """
    if isinstance(images, Image.Image):
        images = [images]
    images = [im.convert("RGB") for im in images]
    if processor is None:
        raise ValueError("clip_pixel_values needs a CLIP image processor")
    if hasattr(processor, "image_processor"):  # a CLIPProcessor: use its image half only
        processor = processor.image_processor
    out = processor(images=images, return_tensors="pt")
    pixel_values = out["pixel_values"] if not isinstance(out, torch.Tensor) else out
    return torch.as_tensor(pixel_values, dtype=torch.float32)


def collate_pairs(items: Sequence[dict], image_transform: Callable | None = None, clip_processor=None,
                  keep_images: bool = False) -> dict[str, Any]:
    """Batch paired-dataset items for training or generation.

    Returns a dict with ``eeg`` float32 ``[B, C, T]``, ``label`` int64 ``[B]``, ``index`` int64
    ``[B]`` (-1 where a dataset gives none), ``subject`` and ``image_name`` (lists), and, when
    asked, ``pixel_values`` ``[B, 3, H, W]`` in [-1, 1] (through ``image_transform``),
    ``clip_pixel_values`` (through ``clip_processor``) and ``images`` (the PIL images).

    Use with a DataLoader through ``functools.partial`` or :class:`PairCollator`.
    """
    if not items:
        raise DataError("cannot collate an empty batch")
    shapes = {tuple(torch.as_tensor(it["eeg"]).shape) for it in items}
    if len(shapes) != 1:
        raise DataError(f"EEG items of different shapes in one batch: {sorted(shapes)}; "
                        "every item must be mapped to the model's input (n_chans x n_times)")
    batch: dict[str, Any] = {
        "eeg": torch.stack([torch.as_tensor(it["eeg"], dtype=torch.float32) for it in items]),
        "label": torch.tensor([int(it.get("label", -1)) for it in items], dtype=torch.long),
        "index": torch.tensor([int(it.get("index", -1)) for it in items], dtype=torch.long),
        "subject": [it.get("subject") for it in items],
        "image_name": [it.get("image_name") for it in items],
    }
    images = [it.get("image") for it in items]
    have_images = all(im is not None for im in images)
    if image_transform is not None:
        if not have_images:
            raise DataError("a batch item has no image, so it cannot train the diffusion branch")
        batch["pixel_values"] = torch.stack([image_transform(im) for im in images])
    if clip_processor is not None:
        if not have_images:
            raise DataError("a batch item has no image, so it cannot give a CLIP target")
        batch["clip_pixel_values"] = clip_pixel_values(images, clip_processor)
    if keep_images:
        batch["images"] = images
    return batch


def image_grid(rows: Sequence[Sequence[Image.Image]], size: tuple[int, int] | None = None) -> Image.Image:
    """Paste rows of PIL images into one image, each resized to ``size`` (default: the first row's last image)."""
    w, h = size or rows[0][-1].size
    cols = max(len(r) for r in rows)
    grid = Image.new("RGB", (cols * w, len(rows) * h), "white")
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            grid.paste(im.convert("RGB").resize((w, h)), (j * w, i * h))
    return grid


class PairCollator:
    """Picklable ``collate_fn`` (DataLoader workers need one): ``PairCollator(transform, processor)``."""

    def __init__(self, image_transform: Callable | None = None, clip_processor=None, keep_images: bool = False):
        self.image_transform = image_transform
        self.clip_processor = clip_processor
        self.keep_images = keep_images

    def __call__(self, items: Sequence[dict]) -> dict[str, Any]:
        return collate_pairs(items, self.image_transform, self.clip_processor, self.keep_images)
