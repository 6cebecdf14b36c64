"""The judge of the semantic accuracy: any transformers image-classification model.

The paper (via MinD-Vis) uses torchvision's ViT-H/14 with the IMAGENET1K_SWAG_E2E_V1 weights: SWAG
weakly-supervised pretraining on 3.6 B Instagram images, end-to-end fine-tuned on ImageNet-1k at 518 x 518 px,
88.55 % ImageNet-1k top-1. torchvision cannot be installed beside this project's torch, so the default here is
the closest ImageNet-1k classifier in transformers: :data:`DEFAULT_IMAGENET_CLASSIFIER`, BEiT-L/16 at 512 px
(ImageNet-22k self-supervised + supervised, fine-tuned on ImageNet-1k at 512 px, 88.6 % top-1 in the BEiT paper):
the same label set and input size class, a different backbone and pretraining, so numbers are close to, not
identical with, the paper's protocol. Any other hub id or folder works (``--classifier``), e.g.
``google/vit-large-patch16-224`` (faster, 224 px) or ``facebook/convnext-large-224``.

``builtin-tiny`` names the independent digit classifier of the built-in benchmark
(:func:`dreamdiffusion.models.builtin.classifier_path`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models import builtin
from dreamdiffusion.models.hub import LOAD_ERRORS, SAFE_LOAD, checked

logger = logging.getLogger(__name__)

DEFAULT_IMAGENET_CLASSIFIER = "microsoft/beit-large-patch16-512"
BUILTIN_CLASSIFIER = "builtin-tiny"


def resolve_classifier(name_or_path: str | os.PathLike) -> str:
    """``builtin-tiny`` -> the shipped digit judge's folder; anything else is passed through (folder or hub id)."""
    name = os.fspath(name_or_path)
    if name == BUILTIN_CLASSIFIER:
        return os.fspath(builtin.classifier_path())
    return name


@dataclass
class ImageClassifier:
    """A transformers image classifier and its image processor, in eval mode, without gradients."""

    model: torch.nn.Module
    processor: object
    name: str

    @classmethod
    def load(cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> "ImageClassifier":
        """Load with AutoModelForImageClassification/AutoImageProcessor from a folder or a hub id.

        With ``HF_HUB_OFFLINE=1`` a hub id must already be in the local cache; a missing model becomes a
        ConfigError naming it instead of a network traceback.
        """
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        source = resolve_classifier(name_or_path)
        if os.path.sep in source and not Path(source).exists():
            raise ConfigError("classifier folder not found (pass a folder, a hub id, or builtin-tiny)", source)
        checked(source)
        try:
            model = AutoModelForImageClassification.from_pretrained(source, **SAFE_LOAD)
            processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=False)
        except LOAD_ERRORS as exc:
            raise ConfigError(
                f"cannot load an image classifier with its image processor: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''} (pass --classifier with a local folder or a hub "
                "id already in the cache; builtin-tiny is the digit judge)", source) from exc
        model.eval().requires_grad_(False).to(device)
        return cls(model=model, processor=processor, name=os.fspath(name_or_path))

    @property
    def num_classes(self) -> int:
        return int(self.model.config.num_labels)

    @property
    def labels(self) -> list[str]:
        id2label = self.model.config.id2label or {}
        return [str(id2label.get(i, id2label.get(str(i), i))) for i in range(self.num_classes)]

    @torch.no_grad()
    def logits(self, images: Sequence, batch_size: int = 64) -> torch.Tensor:
        """PIL images (any size; the processor resizes) -> logits [N, num_classes] on the CPU, float32."""
        device = next(self.model.parameters()).device
        out = []
        for start in range(0, len(images), batch_size):
            chunk = [img.convert("RGB") for img in images[start:start + batch_size]]
            inputs = self.processor(images=chunk, return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(device)
            out.append(self.model(pixel_values=pixel_values).logits.float().cpu())
        if not out:
            return torch.zeros(0, self.num_classes)
        return torch.cat(out)


__all__ = ["ImageClassifier", "DEFAULT_IMAGENET_CLASSIFIER", "BUILTIN_CLASSIFIER", "resolve_classifier"]
