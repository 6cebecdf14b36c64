"""THINGS-EEG2 (Gifford et al. 2022), the preprocessed release, as EEG-image pairs."""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.data.array_transforms import (
    map_channels_montage,
    map_channels_repeat,
    normalize_windows,
    stretch_time,
)
from dreamdiffusion.data.images import load_image
from dreamdiffusion.data.pairs._common import SPLITS, as_spec, plain_name
from dreamdiffusion.data.safe_load import cached_load, load_npy
from dreamdiffusion.data.transforms import InputSpec


class ThingsEEG2(Dataset):
    """THINGS-EEG2, the preprocessed release, as EEG-image pairs.

    Layout (as distributed; ``root`` may also hold them one folder down in ``preprocessed_data/``
    and ``image_set/``)::

        root/sub-01/preprocessed_eeg_training.npy   dict: preprocessed_eeg_data
                                                    [16540 conditions, 4 repetitions, C, T],
                                                    ch_names (17 or 63), times (T, seconds)
        root/sub-01/preprocessed_eeg_test.npy       [200 conditions, 80 repetitions, C, T]
        root/training_images/<00001_concept>/<image>.jpg   1654 concepts x 10 images
        root/test_images/<00001_concept>/<image>.jpg       200 concepts x 1 image
        root/image_metadata.npy                     optional: the condition order of the images

    Condition ``k`` is the ``k``-th image in concept-folder order then file order (or the order of
    ``image_metadata.npy`` where present).

    The ``.npy`` files are pickled dicts; they are read with :class:`RestrictedUnpickler` (numpy
    arrays, dicts, lists, strings only), never with ``np.load(allow_pickle=True)``.

    Parameters
    ----------
    split : ``"train"`` and ``"val"`` partition the training conditions by image (``val_fraction``
        of the images, chosen with ``seed``); ``"test"`` is the official test set: 200 concepts,
        one image each, for 200-way retrieval. The test set is never used for validation.
    average_repetitions : average each condition's repetitions into one trial (default); else
        every repetition is an item.
    spec : the model's input (:class:`~dreamdiffusion.data.transforms.InputSpec` or its dict):
        ``n_chans`` via ``channel_mapping`` (``"repeat"`` tiles the 17/63 channels, the paper's
        rule; ``"montage"`` interpolates onto ``spec.target_channels`` with MNE spherical
        splines), ``n_times`` by stretching the epoch (linear, end points aligned), and
        ``normalize``. ``n_chans``, ``n_times``, ``channel_mapping`` override single fields.
    time_window : ``(tmin, tmax)`` in seconds of the epoch to keep before stretching (the release
        spans -0.2..0.8 s); default all of it. ``(0.02, 0.46)`` mirrors the paper's EEGCVPR40 crop.
    """

    EEG_FILES = {"train": "preprocessed_eeg_training.npy", "val": "preprocessed_eeg_training.npy",
                 "test": "preprocessed_eeg_test.npy"}
    IMAGE_FOLDERS = {"train": "training_images", "val": "training_images", "test": "test_images"}

    def __init__(self, root: str | os.PathLike, split: str = "train", subject: int = 1,
                 average_repetitions: bool = True, spec: InputSpec | dict | None = None,
                 n_chans: int | None = None, n_times: int | None = None, channel_mapping: str | None = None,
                 time_window: tuple[float, float] | None = None, val_fraction: float = 0.1, seed: int = 0,
                 image_root: str | os.PathLike | None = None, check_images: bool = True):
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError("THINGS-EEG2 folder not found", self.root)
        self.split, self.subject, self.average_repetitions = split, int(subject), bool(average_repetitions)
        self.spec = as_spec(spec, n_chans=n_chans, n_times=n_times, channel_mapping=channel_mapping)

        self.eeg_path = self._find_eeg_file()
        data = cached_load(self.eeg_path, lambda p: load_npy(p, "THINGS-EEG2 EEG file"), "npy")
        self._eeg, self.ch_names, self.times = self._check_eeg_dict(data)
        self._t_slice = self._time_slice(time_window)
        # The epoch is stretched, not resampled: record the rate that stretch amounts to (the
        # release's 100 samples over 1 s -> 512 samples = 512 Hz), as EEGCVPR40 records 1163.6 Hz.
        kept = self.times[self._t_slice]
        step = float(np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0
        span = kept[-1] - kept[0] + step
        if step > 0 and span > 0 and math.isfinite(self.spec.n_times / span):
            self.spec = replace(self.spec, sfreq=self.spec.n_times / span)

        image_root = Path(image_root) if image_root is not None else self.root
        self.image_folder, self.concepts, self._images = self._find_images(image_root)
        n_cond = self._eeg.shape[0]
        if len(self._images) != n_cond:
            raise DataError(f"{n_cond} EEG conditions but {len(self._images)} images under {self.image_folder}; "
                            "the image set and the EEG file do not belong together", self.eeg_path)

        if split == "test":
            self.conditions = list(range(n_cond))
        else:
            # Partition by image (= condition): a val image's EEG never appears in train.
            order = np.random.default_rng(seed).permutation(n_cond)
            n_val = max(1, int(round(val_fraction * n_cond)))
            chosen = np.sort(order[:n_val] if split == "val" else order[n_val:])
            self.conditions = [int(c) for c in chosen]
            if not self.conditions:
                raise DataError(f"the {split} split is empty ({n_cond} conditions, val_fraction {val_fraction})",
                                self.eeg_path)
        self.n_repetitions = 1 if self.average_repetitions else int(self._eeg.shape[1])
        self._mapping = self._channel_matrix()
        if check_images:
            missing = [p for p, _ in (self._images[c] for c in self.conditions) if not p.is_file()]
            if missing:
                raise DataError(f"{len(missing)} image(s) of the {split} split missing", missing[0])

    # -- files -------------------------------------------------------------------------------------
    def _find_eeg_file(self) -> Path:
        name = self.EEG_FILES[self.split]
        sub = f"sub-{self.subject:02d}"
        tried = [self.root / d / sub / name for d in ("", "preprocessed_data", "Preprocessed_data_250Hz",
                                                     "preprocessed_eeg_data")]
        for p in tried:
            if p.is_file():
                return p
        raise DataError(f"no {sub}/{name} under it (looked in {', '.join(str(p.parent) for p in tried)})", self.root)

    def _check_eeg_dict(self, data) -> tuple[np.ndarray, list[str], np.ndarray]:
        p = self.eeg_path
        if not isinstance(data, dict):
            raise DataError(f"expected a dict with preprocessed_eeg_data, ch_names, times; got {type(data).__name__}", p)
        missing = [k for k in ("preprocessed_eeg_data", "ch_names", "times") if k not in data]
        if missing:
            raise DataError(f"missing key(s) {missing}", p)
        eeg, ch_names, times = data["preprocessed_eeg_data"], data["ch_names"], data["times"]
        if not isinstance(eeg, np.ndarray) or eeg.ndim != 4:
            shape = getattr(eeg, "shape", None)
            raise DataError(f"preprocessed_eeg_data must be an array [conditions, repetitions, channels, times], "
                            f"got {type(eeg).__name__} {shape}", p)
        if eeg.dtype.kind not in "fiu":
            raise DataError(f"preprocessed_eeg_data has dtype {eeg.dtype}, expected real numbers", p)
        if min(eeg.shape) < 1:
            raise DataError(f"preprocessed_eeg_data is empty, shape {eeg.shape}", p)
        if isinstance(ch_names, np.ndarray):
            ch_names = ch_names.tolist()
        if not isinstance(ch_names, (list, tuple)) or not all(isinstance(c, str) for c in ch_names):
            raise DataError("ch_names must be a list of strings", p)
        if len(ch_names) != eeg.shape[2]:
            raise DataError(f"{len(ch_names)} channel names for {eeg.shape[2]} channels", p)
        try:
            times = np.asarray(times, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError("times must be an array of seconds", p) from None
        if times.shape[0] != eeg.shape[3] or not np.isfinite(times).all():
            raise DataError(f"times has {times.shape[0]} finite-or-not values for {eeg.shape[3]} samples", p)
        return eeg, list(ch_names), times

    def _time_slice(self, window) -> slice:
        if window is None:
            return slice(None)
        tmin, tmax = float(window[0]), float(window[1])
        idx = np.flatnonzero((self.times >= tmin - 1e-9) & (self.times <= tmax + 1e-9))
        if len(idx) < 2:
            raise ConfigError(f"time_window {window} keeps fewer than 2 of the epoch's samples "
                              f"({self.times[0]:.3f}..{self.times[-1]:.3f} s)")
        return slice(int(idx[0]), int(idx[-1]) + 1)

    def _find_images(self, image_root: Path) -> tuple[Path, list[str], list[tuple[Path, int]]]:
        folder_name = self.IMAGE_FOLDERS[self.split]
        candidates = [image_root / folder_name, image_root / "image_set" / folder_name]
        folder = next((c for c in candidates if c.is_dir()), None)
        if folder is None:
            raise DataError(f"no {folder_name}/ folder (looked in {', '.join(map(str, candidates))})", image_root)
        meta_path = next((m for m in (folder.parent / "image_metadata.npy",) if m.is_file()), None)
        prefix = "test" if self.split == "test" else "train"
        if meta_path is not None:
            meta = load_npy(meta_path, "THINGS-EEG2 image metadata")
            concepts_key, files_key = f"{prefix}_img_concepts", f"{prefix}_img_files"
            if not isinstance(meta, dict) or concepts_key not in meta or files_key not in meta:
                raise DataError(f"expected a dict with {concepts_key} and {files_key}", meta_path)
            img_concepts, img_files = list(meta[concepts_key]), list(meta[files_key])
            if len(img_concepts) != len(img_files) or not all(isinstance(s, str) for s in img_concepts + img_files):
                raise DataError(f"{concepts_key} and {files_key} must be lists of strings of one length", meta_path)
            concept_dirs = sorted(set(img_concepts))
            pairs = list(zip(img_concepts, img_files))
        else:
            concept_dirs = sorted(d.name for d in folder.iterdir() if d.is_dir())
            pairs = [(c, f.name) for c in concept_dirs for f in sorted((folder / c).iterdir())
                     if f.is_file() and f.suffix.lower() in (".jpg", ".jpeg", ".png")]
        index = {c: i for i, c in enumerate(concept_dirs)}
        for c, f in pairs:
            if not (plain_name(c) and plain_name(f)):
                raise DataError(f"image entry {c!r}/{f!r} is not a plain file name", meta_path or folder)
        images = [(folder / c / f, index[c]) for c, f in pairs]
        # Folder "00001_aardvark" -> concept "aardvark".
        concepts = [re.sub(r"^\d+_", "", c) for c in concept_dirs]
        return folder, concepts, images

    def _channel_matrix(self) -> np.ndarray | None:
        """The channel mapping as a matrix ``[n_chans, C]`` (both mappings are linear in the data,
        so it is computed once, by mapping an identity, and applied per item as a product)."""
        c = len(self.ch_names)
        if self.spec.channel_mapping == "montage":
            target = self.spec.target_channels or self.spec.n_chans
            try:
                return map_channels_montage(np.eye(c), self.ch_names, target, self.spec.montage).astype(np.float32)
            except DataError as exc:
                raise DataError(f"montage channel mapping failed: {exc.message}", self.eeg_path) from None
        return map_channels_repeat(np.eye(c, dtype=np.float32), self.spec.n_chans)

    # -- public ---------------------------------------------------------------------------------------
    @property
    def n_way(self) -> int:
        """Number of concepts (200 on the test split: 200-way retrieval)."""
        return len(self.concepts)

    @property
    def labels(self) -> list[int]:
        return [self._images[self.conditions[i // self.n_repetitions]][1] for i in range(len(self))]

    def image_path(self, index: int) -> Path:
        return self._images[self.conditions[index // self.n_repetitions]][0]

    def eeg(self, index: int) -> torch.Tensor:
        cond, rep = self.conditions[index // self.n_repetitions], index % self.n_repetitions
        trials = self._eeg[cond, :, :, self._t_slice] if self.average_repetitions else \
            self._eeg[cond, rep:rep + 1, :, self._t_slice]
        x = np.asarray(trials, dtype=np.float64).mean(axis=0)  # [C, T]
        if not np.isfinite(x).all():
            raise DataError(f"condition {cond} holds NaN or Inf samples", self.eeg_path)
        x = self._mapping @ x
        x = stretch_time(x, self.spec.n_times)
        x = normalize_windows(x[None], self.spec.normalize)[0]
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.conditions) * self.n_repetitions

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index = index % len(self)
        path, label = self._images[self.conditions[index // self.n_repetitions]]
        return {"eeg": self.eeg(index), "image": load_image(path), "label": label, "subject": self.subject,
                "image_name": path.stem, "concept": self.concepts[label], "index": index}



# ---------------------------------------------------------------------------------------------------------------
# Subjects as the field runs them: intra-subject and leave-one-subject-out

def find_subjects(root: str | os.PathLike) -> list[int]:
    """The subject numbers with a ``sub-XX`` folder under ``root`` (or one of its usual sub-folders)."""
    root = Path(root)
    found = set()
    for d in ("", "preprocessed_data", "Preprocessed_data_250Hz", "preprocessed_eeg_data"):
        folder = root / d
        if folder.is_dir():
            found |= {int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(r"sub-(\d+)", p.name))}
    return sorted(found)


def split_subjects(split: str, root, subject: int = 1, subjects: list | None = None,
                   leave_out_subject: int | None = None) -> list[int]:
    """Whose EEG a split holds. Intra-subject: ``subjects`` (or ``subject``) in every split. Leave-one-subject-out:
    train and val from every other subject (``subjects``, default all on disk), test from ``leave_out_subject`` alone,
    so the model never trains on the subject it is tested on."""
    if leave_out_subject is None:
        return [int(s) for s in (subjects or [subject])]
    left = int(leave_out_subject)
    if split == "test":
        return [left]
    pool = [int(s) for s in (subjects or find_subjects(root)) if int(s) != left]
    if not pool:
        raise DataError(f"leave-one-subject-out of subject {left}: no other subject to train on", root)
    return pool


class ThingsEEG2Subjects(torch.utils.data.ConcatDataset):
    """Several subjects' :class:`ThingsEEG2` of one split, one after another (items carry their ``subject``)."""

    def __init__(self, parts: list[ThingsEEG2]):
        super().__init__(parts)
        first = parts[0]
        self.spec, self.ch_names, self.times, self.concepts = first.spec, first.ch_names, first.times, first.concepts
        self.subjects = [p.subject for p in parts]
        self.split = first.split

    @property
    def n_way(self) -> int:
        return self.datasets[0].n_way


def open_things_eeg2(root: str | os.PathLike, split: str = "train", subject: int = 1, subjects: list | None = None,
                     leave_out_subject: int | None = None, average_repetitions: bool = True,
                     spec: InputSpec | dict | None = None, n_chans: int | None = None, n_times: int | None = None,
                     channel_mapping: str | None = None, time_window: tuple[float, float] | None = None,
                     val_fraction: float = 0.1, seed: int = 0, image_root: str | os.PathLike | None = None,
                     check_images: bool = True) -> Dataset:
    """THINGS-EEG2 as the field runs it: :func:`split_subjects` decides whose EEG, the test split always averages
    each test image's repetitions (200 test EEGs per subject: 200-way retrieval), ``average_repetitions`` applies
    to train and val (False: every repetition is a trial, as UBP and NeuroBridge train)."""
    options = dict(spec=spec, n_chans=n_chans, n_times=n_times, channel_mapping=channel_mapping,
                   time_window=time_window, val_fraction=val_fraction, seed=seed, image_root=image_root,
                   check_images=check_images, average_repetitions=True if split == "test" else average_repetitions)
    parts = [ThingsEEG2(root, split, subject=s, **options)
             for s in split_subjects(split, root, subject, subjects, leave_out_subject)]
    return parts[0] if len(parts) == 1 else ThingsEEG2Subjects(parts)
