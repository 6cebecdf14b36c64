"""Fewer pairs: a seeded share of a split's distinct images, with every trial of each (``--train-fraction``).

DreamDiffusion's claim is that pretraining on plentiful unlabeled EEG helps most when EEG-image pairs are few;
testing it needs the same val and test splits and a smaller train split. The subset is drawn by image (all
trials of a kept image stay; no image is split across the line), stratified by label when every item has one
(each class keeps about the same share), and is a pure function of ``(dataset, fraction, seed)``: Stage B
(``finetune --train-fraction``) and the baselines of ``evaluate`` (``--baseline-train-fraction``) given the same
fraction and seed fit on the same pairs.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset, Subset

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.seeding import STREAM_SUBSET, derived_seed


class ImageSubset(Subset):
    """A ``Subset`` that still answers for its dataset (``spec``, ``sfreq``, ``class_names`` ...)."""

    def __getattr__(self, name):
        if name in ("dataset", "indices") or name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self.dataset, name)
        if name == "eeg":  # item i's EEG alone: item i of the subset is item indices[i] of the dataset
            return lambda i: attr(int(self.indices[i]))
        return attr

    def image_keys(self) -> list[tuple]:
        keys = item_keys(self.dataset)
        return [keys[i] for i in self.indices]


def item_keys(dataset: Dataset) -> list[tuple]:
    """``(image, label)`` of each item; reads each item once (a dataset with ``image_keys()`` answers directly)."""
    if hasattr(dataset, "image_keys"):
        return list(dataset.image_keys())
    keys = []
    for i in range(len(dataset)):
        item = dataset[i]
        keys.append((item.get("image_name", i), item.get("label")))
    return keys


def keep_fraction_of_images(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """``dataset`` itself for ``fraction`` 1; otherwise a ``Subset`` with ``fraction`` of its distinct images
    (at least one per class), every trial of each, in the dataset's order."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"the pairs fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return dataset
    keys = item_keys(dataset)
    images: dict = {}
    for image, label in keys:
        images.setdefault(image, label)
    rng = np.random.default_rng(derived_seed(seed, STREAM_SUBSET))
    by_label: dict = {}
    for image, label in images.items():
        by_label.setdefault(label if label is not None else "", []).append(image)
    kept = set()
    for label in sorted(by_label, key=str):
        group = by_label[label]
        n = max(1, int(round(fraction * len(group))))
        kept.update(group[i] for i in sorted(rng.permutation(len(group))[:n]))
    return ImageSubset(dataset, [i for i, (image, _) in enumerate(keys) if image in kept])


__all__ = ["keep_fraction_of_images", "item_keys", "ImageSubset"]
