"""Pretraining corpus: sharded, memory-mapped EEG windows with a manifest.

Layout of a corpus folder::

    DIR/manifest.json          {"format": "dreamdiffusion-corpus", "version": 1, "n_chans": 128,
                                "n_times": 512, "sfreq": ..., "n_windows": N,
                                "shards": [{"file": "shard-00000.npy", "n_windows": n}, ...],
                                "recordings": [{"source": ..., "subject": ..., "sfreq_original": ...,
                                                "n_chans_original": ..., "n_windows": ...,
                                                "shard": ..., "start": ...}, ...],
                                "spec": {InputSpec}, "skipped": [...], "excluded": [...]}
    DIR/shard-00000.npy        float32 [n, n_chans, n_times], read with np.load(mmap_mode="r")

A corpus is written to a hidden sibling ``.DIR.partial-PID-*`` and renamed to ``DIR`` when complete, so a folder with a
manifest is always whole. Shards are streamed to disk window chunk by window chunk (memory stays
flat however large the corpus), and read back through memory maps.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dreamdiffusion.core.errors import DataError, DreamDiffusionError, EEGReadError
from dreamdiffusion.core.files import atomic_write_json, begin_staging, publish_folder
from dreamdiffusion.data.exclusions import is_excluded, read_exclusions, subject_of
from dreamdiffusion.data.io import EEG_EXTENSIONS, find_recordings, read_raw
from dreamdiffusion.data.moabb_source import moabb_recordings, resolve_datasets
from dreamdiffusion.data.transforms import InputSpec, count_windows, iter_windows

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_NAME = "dreamdiffusion-corpus"
DEFAULT_SHARD_SIZE = 1024  # windows per shard: 256 MiB at 128 x 512 float32


class _ShardFile:
    """One ``.npy`` shard written incrementally: the header is written for a full shard up
    front and the samples appended; a last, partial shard gets its header fixed on close."""

    def __init__(self, path: Path, capacity: int, window_shape: tuple[int, int]):
        self.path, self.capacity, self.window_shape = path, capacity, window_shape
        self.count = 0
        self.fh = open(path, "wb")
        self._header_len = self._write_header(self.fh, capacity)

    def _write_header(self, fh, n: int) -> int:
        d = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
             "shape": (n, *self.window_shape)}
        np.lib.format.write_array_header_1_0(fh, d)
        return fh.tell()

    def write(self, windows: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(windows, dtype="<f4").tobytes())
        self.count += len(windows)

    def close(self) -> None:
        self.fh.close()
        if self.count == self.capacity:
            return
        # Rewrite with the true shape: header, then the samples copied across in blocks.
        fixed = self.path.with_name(self.path.name + ".fix")
        with open(self.path, "rb") as src, open(fixed, "wb") as dst:
            self._write_header(dst, self.count)
            dst.flush()
            _copy_range(src, dst, self._header_len)
        os.replace(fixed, self.path)


def _copy_range(src, dst, offset: int) -> None:
    """Copy ``src`` from ``offset`` to its end onto the end of ``dst``, in the kernel where it can
    (``copy_file_range``: no user-space buffer, so memory stays flat), else in 1 MiB blocks."""
    size = os.fstat(src.fileno()).st_size - offset
    try:
        while size > 0:
            n = os.copy_file_range(src.fileno(), dst.fileno(), size, offset)
            if n <= 0:
                break
            offset += n
            size -= n
        if size <= 0:
            return
    except (AttributeError, OSError):
        pass
    src.seek(offset)
    dst.seek(0, os.SEEK_END)
    shutil.copyfileobj(src, dst, 2**20)


class CorpusWriter:
    """Append windows recording by recording; ``close()`` publishes the folder atomically."""

    def __init__(self, output: str | os.PathLike, n_chans: int, n_times: int, sfreq: float,
                 shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False, extra: dict | None = None):
        self.output = Path(output)
        if self.output.exists() and not self.output.is_dir():
            raise DataError("--output is an existing file, not a folder", self.output)
        if self.output.exists() and not overwrite:
            raise DataError("output folder already exists (pass overwrite=True / --overwrite)", self.output)
        if self.output.exists() and not (self.output / MANIFEST).is_file() and any(self.output.iterdir()):
            # Never delete a folder that is not a corpus: --overwrite means "replace my corpus".
            raise DataError("output folder exists and is not a corpus; refusing to replace it", self.output)
        if int(shard_size) < 1:
            raise DataError(f"shard_size must be at least 1, got {shard_size}")
        # The one output-folder policy (core.files): a temporary sibling, renamed into place by close();
        # what killed builds left behind is removed here.
        self.tmp = begin_staging(self.output, overwrite=True)
        self.n_chans, self.n_times, self.sfreq = int(n_chans), int(n_times), float(sfreq)
        self.shard_size = int(shard_size)
        self.extra = dict(extra or {})
        self.shards: list[dict] = []
        self.recordings: list[dict] = []
        self._open: _ShardFile | None = None
        self.n_windows = 0

    def add(self, windows: np.ndarray, **recording_info) -> None:
        """Add ``windows`` ``[n, n_chans, n_times]`` of one recording with its provenance."""
        self.begin_recording(**recording_info)
        self.extend(windows)

    def begin_recording(self, **recording_info) -> None:
        """Start a recording whose windows follow through ``extend`` (for chunked writes)."""
        # A full shard is closed as soon as it fills, so the next window goes to shard len(shards).
        self.recordings.append({**recording_info, "n_windows": 0, "start": int(self.n_windows),
                                "shard": len(self.shards)})

    def extend(self, windows: np.ndarray) -> None:
        """Append windows to the current recording."""
        if not self.recordings:
            raise DataError("CorpusWriter.extend before begin_recording")
        windows = np.asarray(windows, dtype=np.float32)
        source = self.recordings[-1].get("source")
        if windows.ndim != 3 or windows.shape[1:] != (self.n_chans, self.n_times):
            raise DataError(f"windows must be [n, {self.n_chans}, {self.n_times}], got {windows.shape}", source)
        if not np.isfinite(windows).all():
            raise DataError("windows hold NaN or Inf values", source)
        i = 0
        while i < len(windows):
            if self._open is None:
                name = f"shard-{len(self.shards):05d}.npy"
                self._open = _ShardFile(self.tmp / name, self.shard_size, (self.n_chans, self.n_times))
            take = min(self.shard_size - self._open.count, len(windows) - i)
            self._open.write(windows[i:i + take])
            i += take
            if self._open.count == self.shard_size:
                self._finish_shard()
        self.recordings[-1]["n_windows"] += int(len(windows))
        self.n_windows += int(len(windows))

    def _finish_shard(self) -> None:
        if self._open is None:
            return
        self._open.close()
        if self._open.count:
            self.shards.append({"file": self._open.path.name, "n_windows": int(self._open.count)})
        else:
            self._open.path.unlink()
        self._open = None

    def close(self) -> Path:
        self._finish_shard()
        self.recordings = [r for r in self.recordings if r["n_windows"] > 0]
        manifest = {
            "format": FORMAT_NAME, "version": 1, "n_chans": self.n_chans, "n_times": self.n_times,
            "sfreq": self.sfreq, "n_windows": sum(s["n_windows"] for s in self.shards),
            "shards": self.shards, "recordings": self.recordings, **self.extra,
        }
        atomic_write_json(self.tmp / MANIFEST, manifest)
        return publish_folder(self.tmp, self.output)

    def abort(self) -> None:
        if self._open is not None:
            self._open.fh.close()
            self._open = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_manifest(root: str | os.PathLike) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise DataError("not a corpus folder (no manifest.json; build one with `dreamdiffusion data build-corpus`)", root)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"manifest.json is unreadable: {exc}", path) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DataError("manifest.json is not a dreamdiffusion corpus manifest", path)
    return manifest


class CorpusDataset(torch.utils.data.Dataset):
    """Windows of a corpus as float32 tensors ``[n_chans, n_times]``, streamed from memory maps.

    ``split="train"|"val"|"all"``: a deterministic share ``val_fraction`` of windows (chosen by
    index with a fixed stride, so it does not depend on the corpus order) is held out for validation.
    ``__getitems__`` serves a whole batch, one ``preadv`` per window into one tensor (the
    DataLoader calls it when batching); ``collate_fn=collate_windows`` hands that tensor on as is.
    """

    def __init__(self, root: str | os.PathLike, split: str = "all", val_fraction: float = 0.05):
        self.root = Path(root)
        self.manifest = read_manifest(root)
        self.n_chans, self.n_times = self.manifest["n_chans"], self.manifest["n_times"]
        self.sfreq = self.manifest["sfreq"]
        self._offsets = np.cumsum([0] + [s["n_windows"] for s in self.manifest["shards"]])
        self._maps: list[np.ndarray | None] = [None] * len(self.manifest["shards"])
        self._fds: dict[int, int] = {}
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

    def __getstate__(self):
        # Worker processes open their own memory maps.
        state = dict(self.__dict__)
        state["_maps"] = [None] * len(self._maps)
        state["_fds"] = {}
        return state

    def _shard(self, k: int) -> np.ndarray:
        if self._maps[k] is None:
            path = self.root / self.manifest["shards"][k]["file"]
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DataError(f"corpus shard is unreadable: {exc}", path) from None
            if arr.shape != (self.manifest["shards"][k]["n_windows"], self.n_chans, self.n_times):
                raise DataError(f"corpus shard has shape {arr.shape}, the manifest says otherwise", path)
            self._maps[k] = arr
        return self._maps[k]

    def __getitem__(self, i: int) -> torch.Tensor:
        g = int(self.indices[i])
        k = int(np.searchsorted(self._offsets, g, side="right") - 1)
        return torch.from_numpy(np.array(self._shard(k)[g - self._offsets[k]], dtype=np.float32))

    def __getitems__(self, idx: list[int]) -> "WindowBatch":
        """A batch in one tensor ``[B, n_chans, n_times]`` (as a list of its rows, so the default
        collate still works; ``collate_windows`` takes the tensor as is, saving a copy).

        Each window is read once, straight from the shard file into the batch with ``preadv``
        (in file order), so the kernel copies from its page cache and the process maps nothing:
        memory stays flat however large the corpus, where reading through the memory map would
        pull every touched page into the process's resident set. Inside a DataLoader worker the
        batch is allocated in shared memory, so it crosses to the main process uncopied."""
        g = self.indices[np.asarray(idx, dtype=np.int64)]
        k = np.searchsorted(self._offsets, g, side="right") - 1
        out = torch.empty((len(g), self.n_chans, self.n_times), dtype=torch.float32)
        if torch.utils.data.get_worker_info() is not None:
            out.share_memory_()
        arr = out.numpy()
        nbytes = self.n_chans * self.n_times * 4
        for j in np.lexsort((g, k)):
            shard = int(k[j])
            local = int(g[j] - self._offsets[shard])
            fd = self._fd(shard) if _HAVE_PREADV else None
            if fd is None:
                arr[j] = self._shard(shard)[local]
                continue
            got = os.preadv(fd, [memoryview(arr[j]).cast("B")], self._maps[shard].offset + local * nbytes)
            if got != nbytes:
                raise DataError(f"corpus shard is truncated (window {local})",
                                self.root / self.manifest["shards"][shard]["file"])
        return WindowBatch(out)

    def _fd(self, k: int) -> int | None:
        if k not in self._fds:
            self._shard(k)  # checks the header and shape, and gives the data offset
            path = self.root / self.manifest["shards"][k]["file"]
            try:
                self._fds[k] = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise DataError(f"corpus shard is unreadable: {exc}", path) from None
        return self._fds[k]

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass


_HAVE_PREADV = hasattr(os, "preadv")


class WindowBatch(list):
    """The rows of a batch tensor, with the tensor itself in ``.tensor``."""

    def __init__(self, tensor: torch.Tensor):
        super().__init__(tensor.unbind(0))
        self.tensor = tensor


def collate_windows(batch) -> torch.Tensor:
    """``collate_fn`` for ``CorpusDataset``: the batch tensor ``__getitems__`` built, uncopied
    (falls back to stacking for a plain list of windows)."""
    tensor = getattr(batch, "tensor", None)
    return tensor if tensor is not None else torch.stack(list(batch))


# ---------------------------------------------------------------------------------------------
# Building a corpus from files, folders and MOABB


def _collect_files(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not p.name.lower().endswith(".mff"):
            found = find_recordings(p)
            if not found:
                raise DataError(f"no EEG files in this folder (looked for {', '.join(EEG_EXTENSIONS)})", p)
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise EEGReadError("input not found", p)
    # keep order, drop duplicates (a file given directly and through its folder)
    seen, out = set(), []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out  # files of an unknown type are reported one by one, when read


def _recordings_from_files(files: list[Path], sfreq: float | None, ch_names, montage,
                           repair: bool) -> Iterator[tuple]:
    """``(source, subject, dataset, loader)`` per file; ``loader()`` reads it (may raise)."""
    for f in files:
        yield str(f), subject_of(f), None, (lambda f=f: read_raw(f, sfreq=sfreq, ch_names=ch_names,
                                                                 montage=montage, repair=repair))


def build_corpus(inputs: Iterable[str | os.PathLike] | str | os.PathLike, output: str | os.PathLike,
                 spec=None, moabb: str | Iterable | None = None, exclude=None, strict: bool = False,
                 sfreq: float | None = None, shard_size: int = DEFAULT_SHARD_SIZE, seed: int = 0,
                 overwrite: bool = False, max_windows_per_recording: int | None = None,
                 moabb_subjects: list[int] | None = None, ch_names: list[str] | None = None,
                 montage: str | None = None, repair: bool = False, progress: bool | None = None) -> Path:
    """Turn EEG files, folders (recursive) and MOABB datasets into a pretraining corpus.

    Each recording is read with MNE (``read_raw``), standardised to ``spec`` (``InputSpec``:
    EEG channels, band-pass, common rate, channel mapping), cut into windows with
    ``spec.window_stride`` and normalised per window, then streamed into shards. A recording that
    cannot be read or is shorter than one window is skipped with a warning naming it (and listed
    under ``"skipped"`` in the manifest); ``strict=True`` makes that an error. ``exclude``
    (entries or text files, see ``read_exclusions``) keeps subjects or recordings out, e.g. the
    test subjects of a paired set. ``max_windows_per_recording`` caps long recordings with a
    random (``seed``) but ordered choice of windows. ``repair`` interpolates channels holding
    NaN/Inf (MNE) instead of skipping the recording. Returns the corpus folder.
    """
    spec = spec if spec is not None else InputSpec()
    if isinstance(spec, dict):
        spec = InputSpec.from_dict(spec)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    entries = read_exclusions(exclude)
    files = _collect_files(inputs)
    sources: list[Iterator[tuple]] = [_recordings_from_files(files, sfreq, ch_names, montage, repair)]
    n_expected: int | None = len(files)
    moabb_codes: list[str] = []
    if moabb:
        datasets = resolve_datasets(moabb)
        moabb_codes = [d.code for d in datasets]
        sources.append(moabb_recordings(datasets, subjects=moabb_subjects, exclude=entries))
        n_expected = None  # MOABB runs are only known per subject
    if not files and not moabb:
        raise DataError("nothing to read: give EEG files, folders or --moabb CODE")

    rng = np.random.default_rng(seed)
    writer = CorpusWriter(output, spec.n_chans, spec.n_times, spec.sfreq, shard_size=shard_size,
                          overwrite=overwrite)
    skipped: list[dict] = []
    excluded: list[dict] = []
    try:
        bar = tqdm(total=n_expected, unit="rec", desc="build-corpus", disable=progress is False if progress is not None else None)
        for source_iter in sources:
            for source, subject, dataset, loader in source_iter:
                bar.update(1)
                hit = is_excluded(entries, source, subject, dataset)
                if hit is not None:
                    logger.info("excluded %s (matches %r)", source, hit)
                    excluded.append({"source": source, "subject": subject, "entry": hit})
                    continue
                reason = _add_or_skip(writer, loader, source, subject, dataset, spec, rng,
                                      max_windows_per_recording, strict)
                if reason is not None:
                    skipped.append({"source": source, "reason": reason})
                bar.set_postfix(windows=writer.n_windows)
        bar.close()
        if writer.n_windows == 0:
            what = f"{len(skipped)} skipped, {len(excluded)} excluded"
            first = f"; first problem: {skipped[0]['source']}: {skipped[0]['reason']}" if skipped else ""
            raise DataError(f"no windows to write ({what}){first}", output)
        writer.extra = {
            "spec": spec.to_dict(), "seed": int(seed), "inputs": [os.fspath(i) for i in inputs],
            "moabb": moabb_codes, "exclude": entries, "excluded": excluded, "skipped": skipped,
            "max_windows_per_recording": max_windows_per_recording,
        }
        out = writer.close()
    except BaseException:
        writer.abort()
        raise
    logger.info("corpus %s: %d windows from %d recordings (%d skipped, %d excluded)", out, writer.n_windows,
                len(writer.recordings), len(skipped), len(excluded))
    return out


def _add_or_skip(writer: CorpusWriter, loader, source: str, subject: str, dataset: str | None, spec, rng,
                 max_windows: int | None, strict: bool) -> str | None:
    """Add one recording; ``None`` when added, else why it was skipped (logged). ``strict``: raise instead."""
    try:
        n = _add_recording(writer, loader, source, subject, dataset, spec, rng, max_windows)
    except DreamDiffusionError as exc:
        if strict:
            raise
        logger.warning("skipping %s: %s", source, exc.message)
        return exc.message
    except MemoryError:
        if strict:
            raise DataError("out of memory while processing this recording", source) from None
        logger.warning("skipping %s: out of memory", source)
        return "out of memory"
    logger.debug("%s: %d windows", source, n)
    return None


def _add_recording(writer: CorpusWriter, loader, source: str, subject: str, dataset: str | None, spec,
                   rng: np.random.Generator, cap: int | None) -> int:

    raw = loader()
    sfreq0, n_ch0 = float(raw.info["sfreq"]), len(raw.ch_names)
    n_res = int(round(raw.n_times * spec.sfreq / sfreq0))
    if count_windows(n_res, spec) == 0:
        raise EEGReadError(f"recording is {raw.n_times / sfreq0:.3f} s long, shorter than one window "
                           f"({spec.window_s:.3f} s)", source)
    keep = None
    if cap is not None and count_windows(n_res, spec) > cap:
        keep = np.sort(rng.choice(count_windows(n_res, spec), cap, replace=False))
    info = {"source": source, "subject": subject, "sfreq_original": sfreq0, "n_chans_original": n_ch0}
    if dataset is not None:
        info["dataset"] = dataset
    chunks = iter_windows(raw, spec)
    # The first chunk carries all the work that can fail on bad data (filter, resample, channel
    # mapping); only once it is there does the recording enter the corpus.
    first = next(chunks, None)
    writer.begin_recording(**info)
    done = 0
    for chunk in _chain(first, chunks):
        if keep is not None:
            sel = keep[(keep >= done) & (keep < done + len(chunk))] - done
            done += len(chunk)
            chunk = chunk[sel]
        if len(chunk):
            writer.extend(chunk)
    return writer.recordings[-1]["n_windows"]


def _chain(first, rest):
    if first is not None:
        yield first
    yield from rest
