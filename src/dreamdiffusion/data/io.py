"""Reading EEG recordings: every format ``mne.io.read_raw`` reads, plus plain ``.npy`` arrays.

Whatever goes wrong (a missing file, an unknown extension, a truncated or garbage file, an array
of the wrong rank, NaN/Inf samples, an absurd header) ends as one ``EEGReadError`` naming the file
and the problem, never as a library traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

import mne
import numpy as np

from dreamdiffusion.core.errors import EEGReadError
from dreamdiffusion.data.montage import has_any_position, make_montage
from dreamdiffusion.data.preflight import (
    check_declared_size,
    check_npy_header,
    check_raw_files,
    max_eeg_bytes,
    preflight,
)
from dreamdiffusion.data.safe_load import restricted_unpickle

logger = logging.getLogger(__name__)

# Extensions we look for when a folder is given (lower case; the BrainVision header stands for
# its .eeg/.vmrk companions, an EEGLAB .set for its .fdt).
EEG_EXTENSIONS = (".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".vhdr", ".set", ".cnt", ".mff", ".npy")
# Plausibility bounds: a header outside them is corrupt, not a recording.
MAX_SFREQ = 100_000.0
MAX_CHANNELS = 4096


def eeg_extension(path: str | os.PathLike) -> str | None:
    """The known EEG extension of ``path`` (lower case), or None."""
    name = os.fspath(path).lower()
    for ext in EEG_EXTENSIONS:
        if name.endswith(ext):
            return ext
    return None


def find_recordings(folder: str | os.PathLike) -> list[Path]:
    """Every EEG file under ``folder`` (recursive, sorted, hidden entries skipped)."""
    folder = Path(folder)
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not d.endswith(".mff"))
        for f in sorted(files):
            if not f.startswith(".") and eeg_extension(f):
                out.append(Path(root) / f)
        # An EGI .mff recording is a folder.
        out.extend(Path(root) / d for d in os.listdir(root) if d.lower().endswith(".mff")
                   and (Path(root) / d).is_dir())
    return sorted(set(out))


def _read_npy(path: Path, sfreq: float | None, ch_names, npy_unit: str, max_bytes: int) -> mne.io.BaseRaw:
    if sfreq is None:
        raise EEGReadError("a .npy array carries no sampling rate (pass sfreq= / --sfreq)", path)
    (n_ch, n_t), _dtype = check_npy_header(path, max_bytes)  # before numpy maps a byte of it
    if n_ch == 0 or n_t == 0:
        raise EEGReadError(f".npy array is empty (shape {(n_ch, n_t)})", path)
    if n_ch > MAX_CHANNELS:
        raise EEGReadError(f".npy array has {n_ch} rows; expected channels x samples "
                           f"(transpose it if it is samples x channels)", path)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError, OverflowError, MemoryError) as exc:
        raise EEGReadError(f"cannot read .npy: {_short(exc)}", path) from None
    if ch_names is None:
        ch_names = [f"EEG{i:03d}" for i in range(n_ch)]
    elif len(ch_names) != n_ch:
        raise EEGReadError(f"{len(ch_names)} channel names given for {n_ch} channels", path)
    scale = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "µV": 1e-6}.get(npy_unit)
    if scale is None:
        raise EEGReadError(f"unknown unit {npy_unit!r} (V, mV or uV)", path)
    _check_header(path, float(sfreq), n_ch, n_t, max_bytes)
    info = mne.create_info([str(c) for c in ch_names], float(sfreq), "eeg")
    with np.errstate(over="ignore", invalid="ignore"):
        data = np.asarray(arr, dtype=np.float64) * scale
    return mne.io.RawArray(data, info, verbose="error")


def _check_header(path, sfreq: float, n_ch: int, n_t: int, max_bytes: int) -> None:
    if not (np.isfinite(sfreq) and 0 < sfreq <= MAX_SFREQ):
        raise EEGReadError(f"implausible sampling rate {sfreq!r} Hz (expected 0 < sfreq <= {MAX_SFREQ:g})", path)
    if n_ch < 1 or n_ch > MAX_CHANNELS:
        raise EEGReadError(f"implausible channel count {n_ch}", path)
    if n_t < 1:
        raise EEGReadError("recording holds no samples (zero length)", path)
    check_declared_size(path, n_ch, n_t, max_bytes)


_TRUNCATION_HINTS = ("does not match the file size", "truncated", "Truncated", "smaller than expected")


def _read_mne(path: Path, max_bytes: int, confine: bool) -> mne.io.BaseRaw:
    ext = eeg_extension(path)
    if ext is None:
        raise EEGReadError(f"unknown EEG file type {path.suffix or '(no extension)'!r} "
                           f"(known: {', '.join(EEG_EXTENSIONS)})", path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = mne.io.read_raw(path, preload=False, verbose="warning")
    except MemoryError:
        raise EEGReadError("header asks for more memory than there is: the file is corrupt", path) from None
    except Exception as exc:  # MNE's readers raise anything from ValueError to struct.error on bad bytes
        raise EEGReadError(f"cannot read {ext} file: {_short(exc)} (is it truncated or not a {ext} file?)", path) from None
    for w in caught:
        msg = str(w.message)
        # MNE reads a cut-off EDF/BDF by shortening it to what is there; a recording that lost
        # its end is still a damaged file, so say so instead of training on part of it silently.
        if any(h in msg for h in _TRUNCATION_HINTS):
            raise EEGReadError(f"the file is truncated ({_short(w.message)})", path)
        logger.debug("%s: %s", path, msg)
    _check_header(path, float(raw.info["sfreq"]), len(raw.ch_names), int(raw.n_times), max_bytes)
    if confine:
        check_raw_files(path, raw)
    try:
        raw.load_data(verbose="error")
    except MemoryError:
        raise EEGReadError("not enough memory to load the recording", path) from None
    except Exception as exc:
        raise EEGReadError(f"cannot read the samples: {_short(exc)} (the file is probably truncated)", path) from None
    return raw


def _short(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 200 else msg[:197] + "..."


def read_raw(path: str | os.PathLike, sfreq: float | None = None, ch_names: list[str] | None = None,
             montage: str | None = None, repair: bool = False, allow_nonfinite: bool = False,
             npy_unit: str = "uV", max_bytes: int | None = None, confine: bool = False) -> mne.io.BaseRaw:
    """Read one EEG recording into a loaded ``mne.io.Raw``.

    Parameters
    ----------
    path : any file ``mne.io.read_raw`` reads (EDF/BDF/GDF/FIF/BrainVision .vhdr/EEGLAB .set/
        CNT/MFF) or a ``.npy`` array ``[channels, samples]`` (in ``npy_unit``, default microvolts).
    sfreq : sampling rate of a ``.npy`` array (required there, ignored with a log line elsewhere).
    ch_names : channel names for a ``.npy`` array, or new names for a file's channels.
    montage : a standard montage name (e.g. ``"standard_1005"``) for channel positions. Without
        one, files lacking positions get ``standard_1005`` positions where the names match.
    repair : interpolate channels holding NaN/Inf from their neighbours (MNE spherical splines)
        instead of refusing the file. Needs channel positions.
    allow_nonfinite : keep NaN/Inf samples as they are (for inspection only).
    max_bytes : the most memory the samples may take (float64); default :func:`~dreamdiffusion.data.preflight.max_eeg_bytes`
        (the ``DREAMDIFFUSION_MAX_EEG_MB`` setting). Checked against what the header declares, before reading.
    confine : files the recording refers to (BrainVision ``DataFile=``/``MarkerFile=``, an EEGLAB ``.fdt``) must be
        inside its own folder (the web app sets it for uploads).

    Raises ``EEGReadError`` naming the file for every failure.
    """
    path = Path(path)
    if not path.exists():
        raise EEGReadError("file not found", path)
    if path.is_dir() and not path.name.lower().endswith(".mff"):
        raise EEGReadError("is a folder, not an EEG file", path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise EEGReadError("file is empty (zero bytes)", path)
    except OSError as exc:
        raise EEGReadError(f"cannot access file: {exc}", path) from None
    limit = max_eeg_bytes() if max_bytes is None else int(max_bytes)
    if eeg_extension(path) == ".npy":
        raw = _read_npy(path, sfreq, ch_names, npy_unit, limit)
    else:
        try:
            preflight(path, limit, confine)
        except OSError as exc:
            raise EEGReadError(f"cannot read: {exc.strerror or exc}", path) from None
        raw = _read_mne(path, limit, confine)
        if sfreq is not None and abs(float(sfreq) - raw.info["sfreq"]) > 1e-6:
            logger.info("%s: the file says %g Hz; --sfreq %g is only used for .npy arrays", path, raw.info["sfreq"], sfreq)
        if ch_names is not None:
            if len(ch_names) != len(raw.ch_names):
                raise EEGReadError(f"{len(ch_names)} channel names given for {len(raw.ch_names)} channels", path)
            raw.rename_channels(dict(zip(raw.ch_names, map(str, ch_names))), verbose="error")
    _set_positions(raw, montage, path)
    if not allow_nonfinite:
        _check_finite(raw, path, repair)
    return raw


def _set_positions(raw: mne.io.BaseRaw, montage: str | None, path: Path) -> None:
    if montage is None and has_any_position(raw.info):
        return
    name = montage or "standard_1005"
    try:
        m = make_montage(name)
    except Exception as exc:
        raise EEGReadError(f"unknown montage {name!r}: {_short(exc)}", path) from None
    try:
        raw.set_montage(m, match_case=False, match_alias=True, on_missing="ignore", verbose="error")
    except Exception as exc:  # e.g. duplicate names after case folding: positions are optional
        if montage is not None:
            raise EEGReadError(f"cannot apply montage {name!r}: {_short(exc)}", path) from None
        logger.debug("%s: no standard positions (%s)", path, exc)


def _check_finite(raw: mne.io.BaseRaw, path: Path, repair: bool) -> None:
    data = raw._data  # loaded; checked in place to avoid a copy of a long recording
    finite = np.isfinite(data)
    if finite.all():
        return
    bad_rows = np.flatnonzero(~finite.all(axis=1))
    n_nan = int(np.isnan(data).sum())
    n_inf = int((~finite).sum()) - n_nan
    bad_names = [raw.ch_names[i] for i in bad_rows]
    if not repair:
        raise EEGReadError(f"{n_nan} NaN and {n_inf} Inf samples in channel(s) {bad_names[:6]} "
                           "(clean the file, or pass repair=True / --repair to interpolate those channels)", path)
    eeg = set(mne.pick_types(raw.info, eeg=True, exclude=[]))
    if not set(bad_rows) <= eeg:
        raise EEGReadError(f"NaN/Inf in non-EEG channel(s) {bad_names[:6]}: cannot interpolate them", path)
    if len(bad_rows) > len(eeg) - 3:
        raise EEGReadError(f"NaN/Inf in {len(bad_rows)} of {len(eeg)} EEG channels: too few good ones to repair", path)
    pos_ok = [np.isfinite(raw.info["chs"][i]["loc"][:3]).all() and np.abs(raw.info["chs"][i]["loc"][:3]).sum() > 0
              for i in range(len(raw.ch_names))]
    if not all(pos_ok[i] for i in eeg):
        raise EEGReadError("cannot repair NaN/Inf: some channels have no position (pass a montage matching the "
                           "channel names)", path)
    data[bad_rows] = 0.0
    raw.info["bads"] = sorted(set(raw.info["bads"]) | set(bad_names))
    raw.interpolate_bads(reset_bads=True, origin=(0.0, 0.0, 0.0), verbose="error")
    logger.warning("%s: interpolated %d channel(s) holding NaN/Inf: %s", path, len(bad_rows), bad_names[:8])


def inspect_recording(path: str | os.PathLike, sfreq: float | None = None) -> dict:
    """A summary of one recording (reads it, refuses nothing the reader accepts).

    Flat channels: peak-to-peak below 1e-12 of the unit (nothing recorded). Bad channels: flat,
    holding NaN/Inf, or a standard deviation more than 10x above or below the median channel's
    (a loose electrode or a saturated amplifier).
    """
    path = Path(path)
    raw = read_raw(path, sfreq=sfreq, allow_nonfinite=True)
    data = raw._data
    finite = np.isfinite(data)
    n_nan = int(np.isnan(data).sum())
    n_inf = int((~finite).sum()) - n_nan
    masked = np.where(finite, data, np.nan)
    with np.errstate(invalid="ignore"), _quiet_nanwarnings():
        ptp = np.nanmax(masked, axis=1) - np.nanmin(masked, axis=1)
        std = np.nanstd(masked, axis=1)
    flat = [raw.ch_names[i] for i in range(len(raw.ch_names)) if not (ptp[i] > 1e-12)]
    live = std[np.isfinite(std) & (std > 0)]
    med = float(np.median(live)) if len(live) else 0.0
    bad = []
    for i, name in enumerate(raw.ch_names):
        if name in flat or not finite[i].all():
            bad.append(name)
        elif med > 0 and (std[i] > 10 * med or std[i] < med / 10):
            bad.append(name)
    ext = eeg_extension(path) or path.suffix.lower()
    return {
        "path": os.fspath(path),
        "format": ext.lstrip("."),
        "n_channels": len(raw.ch_names),
        "sfreq": float(raw.info["sfreq"]),
        "n_samples": int(raw.n_times),
        "duration_s": float(raw.n_times / raw.info["sfreq"]),
        "ch_names": list(raw.ch_names),
        "ch_types": list(raw.get_channel_types()),
        "flat_channels": flat,
        "bad_channels": bad,
        "n_nan": n_nan,
        "n_inf": n_inf,
        "has_positions": has_any_position(raw.info),
    }


class _quiet_nanwarnings:
    def __enter__(self):
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *a):
        return self._w.__exit__(*a)


# ---------------------------------------------------------------------------------------------
# The real EEG that ships inside a package (for tests, the demo and `data make-sample`)

def spkit_sample_path() -> Path:
    spec = importlib.util.find_spec("spkit")  # finds the package without running its __init__
    if spec is None or spec.origin is None:
        raise EEGReadError("the sample recording ships with spkit: pip install --no-deps spkit==0.0.9.7")
    return Path(spec.origin).parent / "data" / "files" / "EEG16SecData.pkl"


def sample_raw() -> mne.io.RawArray:
    """spkit's real 14-channel Emotiv EPOC recording (16 s at 128 Hz, PhyAAt data) as MNE Raw."""
    path = spkit_sample_path()
    try:
        # a pickle may name any callable: this reader rebuilds numpy arrays and containers only
        with open(path, "rb") as fh:
            X, ch = restricted_unpickle(fh)
    except (OSError, pickle.UnpicklingError, ValueError) as exc:
        raise EEGReadError(f"cannot read spkit's sample recording: {exc}", path) from None
    X = np.asarray(X, dtype=np.float64)  # (2048, 14) microvolts
    info = mne.create_info([str(c) for c in ch], 128.0, "eeg")
    raw = mne.io.RawArray(X.T * 1e-6, info, verbose="error")

    raw.set_montage(make_montage("standard_1020"), verbose="error")
    return raw



_WRITERS = {".fif": "fif", ".fif.gz": "fif", ".edf": "edf", ".vhdr": "brainvision", ".set": "eeglab"}


def write_raw_file(raw: mne.io.BaseRaw, output: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``raw`` with MNE's own writers, by extension (.fif, .edf, .vhdr, .set), atomically:
    into a temporary folder beside ``output``, then each file renamed into place (a BrainVision
    recording is three files that name each other, so they are written under their final names)."""
    output = Path(output)
    ext = eeg_extension(output)
    if ext not in _WRITERS:
        raise EEGReadError(f"cannot write {output.suffix or 'this'} files (use one of {', '.join(_WRITERS)})", output)
    if output.exists() and not overwrite:
        raise EEGReadError("file exists (pass --overwrite)", output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-" + output.name, dir=output.parent))
    try:
        target = tmp / output.name
        if _WRITERS[ext] == "fif":
            raw.save(target, overwrite=True, verbose="error")
        else:
            mne.export.export_raw(target, raw, fmt=_WRITERS[ext], overwrite=True, verbose="error")
        for f in sorted(tmp.iterdir(), key=lambda p: p == target):  # the main file last
            os.replace(f, output.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return output


def write_sample(output: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write spkit's real 14-channel recording (see ``sample_raw``) to ``output``."""
    return write_raw_file(sample_raw(), output, overwrite=overwrite)
