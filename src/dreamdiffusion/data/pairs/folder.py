"""A user's own EEG-image pairs: a folder of EEG files and a CSV that pairs moments with images."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.data.images import load_image
from dreamdiffusion.data.io import read_raw
from dreamdiffusion.data.pairs._common import SPLITS, as_spec
from dreamdiffusion.data.transforms import InputSpec, standardize_raw, window_at


def _split_of(key: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of one image: a hash, so adding rows never moves existing images."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2.0 ** 64
    return "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"


class FolderPairs(Dataset):
    """A user's EEG-image pairs: a folder of EEG files and a CSV that pairs moments with images.

    CSV columns (header row required; UTF-8):

    ``eeg_file``  EEG file, relative to ``root`` (any format :func:`dreamdiffusion.data.io.read_raw`
                  reads: EDF, BDF, FIF, BrainVision, EEGLAB, ..., or ``.npy`` with ``sfreq``)
    ``onset``     optional: stimulus onset in seconds from the file's start (default 0)
    ``image``     the image shown, relative to ``image_root`` (default ``root``)
    ``label``     optional: an integer class, or class names (numbered in sorted order); -1 if absent
    ``subject``   optional: subject id
    ``split``     optional: ``train``/``val``/``test``; without it images are assigned by a hash of the
                  image path (``val_fraction``/``test_fraction``, ``seed``), so all trials of one
                  image share a split and the assignment does not depend on row order

    Paths in the CSV must stay inside their folder (``root`` for EEG files, ``image_root`` for
    images): ``../`` and absolute paths, and links pointing out, are refused with the CSV's line
    unless ``allow_outside_root=True`` (``--allow-outside-root``).

    Each epoch is cut with MNE: the file is read once, band-passed, resampled and mapped onto the
    model's channels (``spec``, as for pretraining), then the window of ``spec.n_times`` samples
    starting at ``onset + tmin`` is taken and normalised. The default ``tmin=0.02`` skips the first
    20 ms as the paper does. All epochs of the split are cut at construction, so a bad file or an
    onset past the end fails before training starts.
    """

    def __init__(self, root: str | os.PathLike, csv_path: str | os.PathLike | None = None, split: str = "train",
                 spec: InputSpec | dict | None = None, image_root: str | os.PathLike | None = None,
                 tmin: float = 0.02, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                 subject: str | int | None = None, sfreq: float | None = None,
                 n_chans: int | None = None, n_times: int | None = None, channel_mapping: str | None = None,
                 allow_outside_root: bool = False):
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ConfigError(f"val_fraction + test_fraction must be below 1, got {val_fraction}, {test_fraction}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError("EEG folder not found", self.root)
        self.csv_path = Path(csv_path) if csv_path is not None else self.root / "pairs.csv"
        self.image_root = Path(image_root) if image_root is not None else self.root
        self.split = split
        self.allow_outside_root = bool(allow_outside_root)
        self.spec = as_spec(spec, n_chans=n_chans, n_times=n_times, channel_mapping=channel_mapping)
        rows = self._read_csv()
        if subject is not None:
            rows = [r for r in rows if r["subject"] is not None and str(r["subject"]) == str(subject)]
        for r in rows:
            if r["split"] is None:
                r["split"] = _split_of(r["image"], seed, val_fraction, test_fraction)
        self.rows = [r for r in rows if r["split"] == split]
        if not self.rows:
            raise DataError(f"no rows for split {split!r}" + (f" and subject {subject}" if subject is not None else "")
                            + " (add a 'split' column, or more images, or change val_fraction/test_fraction)",
                            self.csv_path)
        self._epochs = self._cut_epochs(sfreq, float(tmin))

    def _read_csv(self) -> list[dict]:
        p = self.csv_path
        if not p.is_file():
            raise DataError("pairs CSV not found (pass --csv)", p)
        try:
            text = p.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"CSV is not UTF-8 text (byte {exc.start})", p) from None
        except OSError as exc:
            raise DataError(f"cannot read CSV: {exc}", p) from None
        if "\x00" in text:
            raise DataError("CSV holds NUL bytes; is it a binary file?", p)
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            fields = [f.strip() for f in (reader.fieldnames or [])]
            # (line where the record ends, record): quoted fields may span lines.
            raw_rows = [(reader.line_num, row) for row in reader]
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", p) from None
        missing = [c for c in ("eeg_file", "image") if c not in fields]
        if missing:
            raise DataError(f"CSV lacks column(s) {missing} (has {fields}); needed: eeg_file, image; "
                            "optional: onset, label, subject, split", p)
        rows = []
        for n, raw in raw_rows:
            r = {(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in raw.items()}
            if None in raw:  # DictReader files surplus values under the key None
                raise DataError(f"line {n}: more values than columns", p)
            where = f"line {n}"
            eeg_file, image = r.get("eeg_file") or "", r.get("image") or ""
            if not eeg_file or not image:
                raise DataError(f"{where}: eeg_file and image must not be empty", p)
            self._check_inside(self.root, eeg_file, f"{where}: eeg_file", "the EEG folder")
            self._check_inside(self.image_root, image, f"{where}: image", "the image folder")
            onset = r.get("onset")
            try:
                onset = 0.0 if onset in (None, "") else float(onset)
            except ValueError:
                raise DataError(f"{where}: onset {onset!r} is not a number of seconds", p) from None
            if not math.isfinite(onset) or onset < 0:
                raise DataError(f"{where}: onset must be a finite number of seconds >= 0, got {onset}", p)
            split = r.get("split") or None
            if split is not None and split not in SPLITS:
                raise DataError(f"{where}: split {split!r} is not one of {SPLITS}", p)
            label = r.get("label")
            rows.append({"line": n, "eeg_file": eeg_file, "onset": onset, "image": image,
                         "label": None if label in (None, "") else label,
                         "subject": r.get("subject") or None, "split": split})
        if not rows:
            raise DataError("CSV has a header but no rows", p)
        self.class_names = self._number_labels(rows)
        return rows

    def _check_inside(self, base: Path, name: str, where: str, what: str) -> None:
        """Refuse a CSV path that leaves ``base`` (``../``, an absolute path, a link pointing out):
        a dataset folder from elsewhere must not make the reader open, and generate copy to its
        output, files anywhere on this machine. ``allow_outside_root`` lets users who keep their
        files elsewhere through."""
        if self.allow_outside_root:
            return
        try:
            inside = (base / name).resolve().is_relative_to(base.resolve())
        except (OSError, RuntimeError, ValueError):  # a link loop, a NUL byte: not a usable path either
            inside = False
        if not inside:
            raise DataError(f"{where} {name!r} is outside {what} {base} (paths in the CSV are relative to it; "
                            "pass --allow-outside-root to read files elsewhere)", self.csv_path)

    def _number_labels(self, rows: list[dict]) -> list[str] | None:
        """Integer labels stay; names become indices into their sorted list (``class_names``)."""
        given = [r["label"] for r in rows if r["label"] is not None]
        if not given:
            for r in rows:
                r["label"] = -1
            return None
        if all(re.fullmatch(r"-?\d+", s) for s in given):
            for r in rows:
                r["label"] = -1 if r["label"] is None else int(r["label"])
            return None
        names = sorted(set(given))
        for r in rows:
            r["label"] = -1 if r["label"] is None else names.index(r["label"])
        return names

    def _cut_epochs(self, sfreq: float | None, tmin: float) -> np.ndarray:
        out = np.empty((len(self.rows), self.spec.n_chans, self.spec.n_times), dtype=np.float32)
        by_file: dict[str, list[int]] = {}
        for i, r in enumerate(self.rows):
            by_file.setdefault(r["eeg_file"], []).append(i)
        for name, idx in by_file.items():
            path = self.root / name
            data = standardize_raw(read_raw(path, sfreq=sfreq), self.spec)  # once per file, not per epoch
            for i in idx:
                r = self.rows[i]
                try:
                    out[i] = window_at(data, r["onset"] + tmin, self.spec)
                except DataError as exc:
                    raise DataError(f"line {r['line']}: {exc.message} in {name}", self.csv_path) from None
        if not np.isfinite(out).all():
            raise DataError("an epoch holds NaN or Inf after preprocessing", self.csv_path)
        return out

    @property
    def labels(self) -> list[int]:
        return [int(r["label"]) for r in self.rows]

    def image_path(self, index: int) -> Path:
        return self.image_root / self.rows[index]["image"]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index = index % len(self)
        r = self.rows[index]
        return {"eeg": torch.from_numpy(self._epochs[index].copy()), "image": load_image(self.image_path(index)),
                "label": int(r["label"]), "subject": r["subject"], "image_name": Path(r["image"]).stem,
                "index": index}
