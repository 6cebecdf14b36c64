"""Pretraining corpus: sharded, memory-mapped EEG windows with a manifest.

Layout of a corpus folder::

    DIR/manifest.json          {"format": "dreamdiffusion-corpus", "version": 1, "n_chans": 128,
                                "n_times": 512, "sfreq": ..., "n_windows": N,
                                "shards": [{"file": "shard-00000.npy", "n_windows": n}, ...],
                                "recordings": [{"source": ..., "subject": ..., "sfreq_original": ...,
                                                "n_chans_original": ..., "n_windows": ...,
                                                "shard": ..., "start": ...}, ...]}
    DIR/shard-00000.npy        float32 [n, n_chans, n_times], read with np.load(mmap_mode="r")

A corpus is written to ``DIR.tmp-*`` and renamed to ``DIR`` when complete, so a folder with a
manifest is always whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from dreamdiffusion.errors import DataError

MANIFEST = "manifest.json"
FORMAT_NAME = "dreamdiffusion-corpus"


class CorpusWriter:
    """Append windows recording by recording; ``close()`` publishes the folder atomically."""

    def __init__(self, output: str | os.PathLike, n_chans: int, n_times: int, sfreq: float,
                 shard_size: int = 4096, overwrite: bool = False, extra: dict | None = None):
        self.output = Path(output)
        if self.output.exists() and not overwrite:
            raise DataError("output folder already exists (pass overwrite=True / --overwrite)", self.output)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=self.output.name + ".tmp-", dir=self.output.parent))
        self.n_chans, self.n_times, self.sfreq = n_chans, n_times, float(sfreq)
        self.shard_size = shard_size
        self.extra = dict(extra or {})
        self.shards: list[dict] = []
        self.recordings: list[dict] = []
        self._buffer: list[np.ndarray] = []
        self._buffered = 0

    def add(self, windows: np.ndarray, **recording_info) -> None:
        """Add ``windows`` ``[n, n_chans, n_times]`` of one recording with its provenance."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 3 or windows.shape[1:] != (self.n_chans, self.n_times):
            raise DataError(f"windows must be [n, {self.n_chans}, {self.n_times}], got {windows.shape}")
        if not np.isfinite(windows).all():
            raise DataError("windows hold NaN or Inf values", recording_info.get("source"))
        start = sum(s["n_windows"] for s in self.shards) + self._buffered
        self.recordings.append({**recording_info, "n_windows": int(len(windows)), "start": int(start)})
        for i in range(0, len(windows), self.shard_size):
            chunk = windows[i:i + self.shard_size]
            self._buffer.append(chunk)
            self._buffered += len(chunk)
            if self._buffered >= self.shard_size:
                self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        data = np.concatenate(self._buffer, axis=0)
        name = f"shard-{len(self.shards):05d}.npy"
        np.save(self.tmp / name, data)
        self.shards.append({"file": name, "n_windows": int(len(data))})
        self._buffer, self._buffered = [], 0

    def close(self) -> Path:
        self._flush()
        manifest = {
            "format": FORMAT_NAME, "version": 1, "n_chans": self.n_chans, "n_times": self.n_times,
            "sfreq": self.sfreq, "n_windows": sum(s["n_windows"] for s in self.shards),
            "shards": self.shards, "recordings": self.recordings, **self.extra,
        }
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if self.output.exists():
            shutil.rmtree(self.output)
        os.replace(self.tmp, self.output)
        return self.output

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError("not a corpus folder (no manifest.json; build one with `dreamdiffusion data build-corpus`)", root)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"manifest.json is unreadable: {exc}", path) from None
    if manifest.get("format") != FORMAT_NAME:
        raise DataError("manifest.json is not a dreamdiffusion corpus manifest", path)
    return manifest


class CorpusDataset(torch.utils.data.Dataset):
    """Windows of a corpus as float32 tensors ``[n_chans, n_times]``, streamed from memory maps.

    ``split="train"|"val"|"all"``: a deterministic share ``val_fraction`` of windows (chosen by
    index with a fixed stride, so it does not depend on the corpus order) is held out for validation.
    """

    def __init__(self, root: str | os.PathLike, split: str = "all", val_fraction: float = 0.05):
        self.root = Path(root)
        self.manifest = read_manifest(root)
        self.n_chans, self.n_times = self.manifest["n_chans"], self.manifest["n_times"]
        self.sfreq = self.manifest["sfreq"]
        self._offsets = np.cumsum([0] + [s["n_windows"] for s in self.manifest["shards"]])
        self._maps: list[np.ndarray | None] = [None] * len(self.manifest["shards"])
        total = int(self._offsets[-1])
        every = max(2, int(round(1 / val_fraction))) if val_fraction > 0 else 0
        all_idx = np.arange(total)
        is_val = (all_idx % every == every - 1) if every else np.zeros(total, bool)
        if split == "train":
            self.indices = all_idx[~is_val]
        elif split == "val":
            self.indices = all_idx[is_val]
        elif split == "all":
            self.indices = all_idx
        else:
            raise ValueError(f"split must be train, val or all, got {split!r}")

    def __len__(self) -> int:
        return len(self.indices)

    def _shard(self, k: int) -> np.ndarray:
        if self._maps[k] is None:
            path = self.root / self.manifest["shards"][k]["file"]
            try:
                self._maps[k] = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(f"corpus shard is unreadable: {exc}", path) from None
        return self._maps[k]

    def __getitem__(self, i: int) -> torch.Tensor:
        g = int(self.indices[i])
        k = int(np.searchsorted(self._offsets, g, side="right") - 1)
        return torch.from_numpy(np.array(self._shard(k)[g - self._offsets[k]], dtype=np.float32))
