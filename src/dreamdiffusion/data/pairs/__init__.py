"""Paired EEG-image datasets for Stage B (fine-tuning), generation and evaluation.

Several sources, one item shape. Every dataset here is a ``torch.utils.data.Dataset`` whose items
are dicts::

    {"eeg": float32 tensor [n_chans, n_times], "image": PIL.Image (RGB), "label": int,
     "subject": int | str, "image_name": str, "index": int}

* :class:`EEGCVPR40` (:mod:`.eegcvpr40`): the EEG-ImageNet set of Spampinato et al. (CVPR 2017) in
  the files its authors distribute, preprocessed as DreamDiffusion does.
* :class:`ThingsEEG2` (:mod:`.things_eeg2`): the preprocessed THINGS-EEG2 release (Gifford et al. 2022).
* :class:`FolderPairs` (:mod:`.folder`): a user's own folder of EEG files plus a CSV of onsets and images.
* ``synthetic`` (:mod:`.synthetic`): the built-in benchmark of :mod:`dreamdiffusion.data.synthetic`.

This module holds the name registry (:data:`PAIRED_DATASETS`, :func:`open_paired_dataset`,
:func:`register_paired_dataset`) and :func:`paired_dataset_options`, which give ``finetune``,
``generate`` and ``evaluate`` one way of selecting data from CLI options.

Downloaded data files are never fully unpickled: see :mod:`dreamdiffusion.data.safe_load`.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.data.pairs._common import SPLITS
from dreamdiffusion.data.pairs.eegcvpr40 import BRAIN2IMAGE_CLASSES, EEGCVPR40, IMAGENET40_NAMES
from dreamdiffusion.data.pairs.folder import FolderPairs
from dreamdiffusion.data.pairs.subset import keep_fraction_of_images
from dreamdiffusion.data.pairs.synthetic import open_synthetic
from dreamdiffusion.data.pairs.things_eeg2 import ThingsEEG2, open_things_eeg2

# Re-exported: these lived in this module before the split, and callers import them from here.
from dreamdiffusion.data.safe_load import (
    RestrictedUnpickler,
    clear_cache,
    load_npy,
    restricted_unpickle,
    safe_torch_load,
)

# =============================================================================================
# Registry


# name -> factory(split=..., **options) returning a Dataset of paired items (a class is its own factory).
PAIRED_DATASETS: dict[str, Callable[..., Dataset]] = {
    "eegcvpr40": EEGCVPR40,
    "things-eeg2": open_things_eeg2,
    "folder": FolderPairs,
    "synthetic": open_synthetic,
}


def register_paired_dataset(name: str, factory: Callable[..., Dataset], overwrite: bool = False) -> None:
    """Make ``open_paired_dataset(name, split, **options)`` call ``factory(split=split, **options)``."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", name):
        raise ValueError(f"dataset names are lower-case words, got {name!r}")
    if name in PAIRED_DATASETS and PAIRED_DATASETS[name] is not factory and not overwrite:
        raise ValueError(f"a paired dataset named {name!r} is already registered")
    PAIRED_DATASETS[name] = factory


def available_paired_datasets() -> list[str]:
    return sorted(PAIRED_DATASETS)


def _factory(name: str) -> Callable[..., Dataset]:
    if name not in PAIRED_DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(available_paired_datasets())}")
    return PAIRED_DATASETS[name]


def open_paired_dataset(name: str, split: str = "train", **options) -> Dataset:
    """Open the paired dataset registered as ``name`` (``eegcvpr40``, ``things-eeg2``, ``folder``,
    ``synthetic``, ...) for ``split`` with its options; an option it does not take is a
    :class:`ConfigError` that lists the ones it does."""
    factory = _factory(name)
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        sig = None
    if sig is not None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        takes = [n for n, p in sig.parameters.items() if n not in ("self", "split") and p.kind is not p.VAR_POSITIONAL]
        unknown = sorted(set(options) - set(takes))
        if unknown:
            raise ConfigError(f"dataset {name!r} does not take option(s) {unknown}; it takes {takes}")
    return factory(split=split, **options)


# CLI option -> parameter name, per dataset. None: the option means nothing for that dataset.
_CLI_NAMES: dict[str, dict[str, str | None]] = {
    "eegcvpr40": {"eeg": "eeg_path", "splits": "splits_path", "images": "image_dir", "subject": "subject",
                  "split_index": "split_index", "root": None, "csv": None, "allow_outside_root": None},
    "things-eeg2": {"eeg": None, "splits": None, "images": "image_root", "subject": "subject",
                    "split_index": None, "root": "root", "csv": None, "allow_outside_root": None},
    "folder": {"eeg": None, "splits": None, "images": "image_root", "subject": "subject", "split_index": None,
               "root": "root", "csv": "csv_path", "allow_outside_root": "allow_outside_root"},
}
# Conventional names inside an EEGCVPR40 --root (the layout of the authors' download).
EEGCVPR40_DEFAULT_FILES = {"eeg_path": "eeg_5_95_std.pth", "splits_path": "block_splits_by_image_single.pth",
                           "image_dir": "imageNet_images"}


def paired_dataset_options(dataset: str, *, eeg: str | os.PathLike | None = None,
                           splits: str | os.PathLike | None = None, images: str | os.PathLike | None = None,
                           subject: int | str | None = None, split_index: int | None = None,
                           root: str | os.PathLike | None = None, csv: str | os.PathLike | None = None,
                           allow_outside_root: bool = False, **extra) -> dict[str, Any]:
    """Turn the shared CLI options (``--eeg --splits --images --subject --split-index --root --csv
    --allow-outside-root``)
    into keyword options for ``open_paired_dataset(dataset, split, **options)``.

    Options the dataset does not use are a :class:`ConfigError`; so is a missing required one. For
    ``eegcvpr40``, ``--root DIR`` fills the files not given from the download's layout
    (``DIR/eeg_5_95_std.pth``, ``DIR/block_splits_by_image_single.pth``, ``DIR/imageNet_images``).
    ``extra`` (non-None values) is passed through as is.
    """
    given = {"eeg": eeg, "splits": splits, "images": images, "subject": subject, "split_index": split_index,
             "root": root, "csv": csv, "allow_outside_root": True if allow_outside_root else None}
    given = {k: v for k, v in given.items() if v is not None}
    flag = {k: "--" + k.replace("_", "-") for k in given}
    names = _CLI_NAMES.get(dataset)
    if names is None:
        _factory(dataset)  # unknown name -> ConfigError listing the known ones
        # A registered dataset (synthetic, ...): pass the options under their own names.
        opts = {("image_root" if k == "images" else k): v for k, v in given.items()}
    else:
        opts = {}
        if dataset == "eegcvpr40" and "root" in given:
            base = Path(given.pop("root"))
            for key, fname in EEGCVPR40_DEFAULT_FILES.items():
                opts[key] = base / fname
        unused = [flag[k] for k in given if names.get(k) is None]
        if unused:
            raise ConfigError(f"--dataset {dataset} does not use {', '.join(unused)}")
        opts.update({names[k]: v for k, v in given.items()})
        required = {"eegcvpr40": {"eeg_path": "--eeg (or --root)", "splits_path": "--splits (or --root)",
                                  "image_dir": "--images (or --root)"},
                    "things-eeg2": {"root": "--root"}, "folder": {"root": "--root"}}[dataset]
        lacking = [f for k, f in required.items() if k not in opts]
        if lacking:
            raise ConfigError(f"--dataset {dataset} needs {', '.join(lacking)}")
    if "subject" in opts and dataset != "folder":
        try:
            opts["subject"] = int(opts["subject"])
        except (TypeError, ValueError):
            raise ConfigError(f"--subject must be an integer for --dataset {dataset}, got {opts['subject']!r}") from None
    opts.update({k: v for k, v in extra.items() if v is not None})
    return opts


def open_paired_dataset_from_cli(dataset: str, split: str, **cli_options) -> Dataset:
    """``open_paired_dataset(dataset, split, **paired_dataset_options(dataset, **cli_options))``."""
    return open_paired_dataset(dataset, split, **paired_dataset_options(dataset, **cli_options))


__all__ = ["SPLITS", "EEGCVPR40", "ThingsEEG2", "FolderPairs", "IMAGENET40_NAMES", "BRAIN2IMAGE_CLASSES",
           "PAIRED_DATASETS", "EEGCVPR40_DEFAULT_FILES", "register_paired_dataset", "available_paired_datasets",
           "open_paired_dataset", "paired_dataset_options", "open_paired_dataset_from_cli", "safe_torch_load",
           "load_npy", "RestrictedUnpickler", "restricted_unpickle", "clear_cache",
           "keep_fraction_of_images"]
