"""Checks of a recording's files before any reader allocates memory for its samples.

Three promises rest here, for every format :func:`dreamdiffusion.data.io.read_raw` reads:

* **Declared size.** What a file says it holds (channels x samples, as the float64 array MNE keeps in
  memory) is checked against a limit *before* the samples are read: :func:`max_eeg_bytes` (the setting
  ``DREAMDIFFUSION_MAX_EEG_MB``, default 4096 MB; the web app uses a far lower one, ``--max-eeg-mb``).
* **No decompression bombs.** Compressed containers (EEGLAB ``.set`` = a compressed MATLAB file, ``.fif.gz``)
  are decompressed as a stream into nothing, counting bytes, and refused as soon as they exceed the limit or
  expand more than :data:`MAX_EXPANSION` times their size on disk (real EEG barely compresses; a 0.5 MB file
  holding 1 GB of zeros is an attack).
* **Companion files stay home.** A BrainVision header names its data and marker files (``DataFile=``,
  ``MarkerFile=``), an EEGLAB ``.set`` its ``.fdt``: with ``confine=True`` (the web app) each must resolve
  inside the header's own folder, so an upload cannot make the server read one of its files.

``.npy`` headers are parsed here too (shape, dtype, and whether the file holds the bytes it declares), so a
negative or huge shape is one error naming the file instead of numpy's memory-map error.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from dreamdiffusion.core.errors import EEGReadError

DEFAULT_MAX_EEG_MB = 4096  # a 128-channel recording of 1 kHz for ~70 min, as float64
APP_MAX_EEG_MB = 256  # the web app's default (--max-eeg-mb): uploads are capped far lower than local files
ENV_MAX_EEG_MB = "DREAMDIFFUSION_MAX_EEG_MB"
MAX_EXPANSION = 64  # decompressed bytes per byte on disk above which a file is a bomb ...
EXPANSION_FLOOR = 64 * 2**20  # ... once it decompresses to more than this
_CHUNK = 1 << 20


def max_eeg_bytes(limit_mb: float | None = None) -> int:
    """The limit on one recording's samples in memory (float64 bytes): ``limit_mb``, else the
    ``DREAMDIFFUSION_MAX_EEG_MB`` setting, else :data:`DEFAULT_MAX_EEG_MB`."""
    if limit_mb is None:
        text = os.environ.get(ENV_MAX_EEG_MB, "").strip()
        try:
            limit_mb = float(text) if text else DEFAULT_MAX_EEG_MB
        except ValueError:
            raise EEGReadError(f"{ENV_MAX_EEG_MB} must be a number of megabytes, got {text!r}") from None
    if not (np.isfinite(limit_mb) and limit_mb > 0):
        raise EEGReadError(f"the EEG size limit must be a positive number of megabytes, got {limit_mb!r}")
    return int(limit_mb * 2**20)


def check_declared_size(path, n_ch: int, n_t: int, max_bytes: int) -> None:
    """Refuse a recording whose samples, as float64, would take more than ``max_bytes``."""
    need = int(n_ch) * int(n_t) * 8
    if need > max_bytes:
        raise EEGReadError(f"declares {n_ch} channels x {n_t} samples ({need / 2**20:,.0f} MB in memory), over "
                           f"the limit of {max_bytes / 2**20:,.0f} MB ({ENV_MAX_EEG_MB}; split the recording "
                           "into shorter files)", path)


def _bomb_cap(path: Path, max_bytes: int) -> int:
    return min(max_bytes, max(EXPANSION_FLOOR, MAX_EXPANSION * path.stat().st_size))


def _refuse_bomb(path: Path, cap: int) -> None:
    raise EEGReadError(f"decompresses to more than {cap / 2**20:,.0f} MB from {path.stat().st_size / 2**20:,.1f} MB "
                       "on disk: refused (a decompression bomb, or over the EEG size limit)", path)


def _drain(decompress, read, budget: int) -> int:
    """Feed ``read()`` chunks to ``decompress(chunk, max_length)`` and count what comes out (never more than
    one chunk in memory); returns the count, or ``budget + 1`` as soon as it passes ``budget``."""
    total = 0
    while True:
        chunk = read()
        if not chunk:
            return total
        while chunk:
            out = decompress.decompress(chunk, _CHUNK)
            total += len(out)
            if total > budget:
                return total
            chunk = decompress.unconsumed_tail
            if not out and not chunk:
                break
        if decompress.eof:
            return total


def check_mat_file(path: Path, max_bytes: int) -> None:
    """An EEGLAB ``.set`` (MATLAB v5 or v7.3 file): its decompressed or declared size against the limit."""
    cap = _bomb_cap(path, max_bytes)
    with open(path, "rb") as fh:
        header = fh.read(128)
        if header[:19] == b"MATLAB 7.3 MAT-file" or header[512:520] == b"\x89HDF\r\n\x1a\n":
            fh.close()
            _check_hdf5(path, cap)
            return
        if len(header) < 128 or header[126:128] not in (b"IM", b"MI"):
            return  # not MATLAB v5: MNE's reader says what is wrong with it
        endian = "<" if header[126:128] == b"IM" else ">"
        total = 0
        while True:
            tag = fh.read(8)
            if len(tag) < 8:
                return
            dtype, nbytes = struct.unpack(endian + "II", tag)
            if dtype & 0xFFFF0000:  # small data element: 4 bytes of data inside the tag
                continue
            if dtype == 15:  # miCOMPRESSED: a zlib stream of nbytes
                remaining = [nbytes]

                def read(remaining=remaining):
                    n = min(_CHUNK, remaining[0])
                    remaining[0] -= n
                    return fh.read(n) if n else b""

                try:
                    total += _drain(zlib.decompressobj(), read, cap - total)
                except zlib.error:
                    return  # a damaged stream: MNE's reader reports it
                if total > cap:
                    _refuse_bomb(path, cap)
                fh.seek(remaining[0], os.SEEK_CUR)
            else:
                total += nbytes
                if total > cap:
                    _refuse_bomb(path, cap)
                fh.seek(nbytes + (-nbytes % 8), os.SEEK_CUR)


# scipy's MATLAB v5 parser (under MNE's EEGLAB reader) can crash the interpreter (SIGSEGV) on a damaged file:
# found by a 10,000-input fuzz run. The header is therefore parsed once in a child process first; a child
# killed by a signal means the file would have killed this process (the web app's server), and is refused.
_MAT_PROBE = ("import sys, resource; resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])));"
              "from pymatreader import read_mat\n"
              "try:\n    read_mat(sys.argv[1])\nexcept BaseException:\n    pass\n")
MAT_PROBE_TIMEOUT_S = 60


def probe_mat_reader(path: Path, max_bytes: int) -> None:
    """Parse a MATLAB file in a child process; refuse it when the parser crashes or hangs there."""
    import subprocess
    import sys

    limit = max(2 * 2**30, 3 * max_bytes)  # address space of the child: the parse may take about the data
    try:
        proc = subprocess.run([sys.executable, "-c", _MAT_PROBE, os.fspath(path), str(limit)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=MAT_PROBE_TIMEOUT_S, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        raise EEGReadError(f"the MATLAB reader did not finish within {MAT_PROBE_TIMEOUT_S} s: refused", path) from None
    if proc.returncode < 0:
        raise EEGReadError(f"the file crashes the MATLAB reader (signal {-proc.returncode}): damaged, refused", path)


def _check_hdf5(path: Path, cap: int) -> None:
    """MATLAB v7.3 files are HDF5: sum the declared sizes of every dataset without reading them."""
    try:
        import h5py
    except ImportError:  # pymatreader needs it to read these files at all
        return
    total = 0

    def visit(_name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += int(obj.size) * int(obj.dtype.itemsize)
            if total > cap:
                _refuse_bomb(path, cap)

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except (OSError, ValueError, RuntimeError, KeyError):
        return  # not a readable HDF5 file: MNE's reader reports it


def check_gzip_file(path: Path, max_bytes: int) -> None:
    """A ``.fif.gz``: decompressed as a stream (into nothing) and refused past the limit or the expansion cap."""
    cap = _bomb_cap(path, max_bytes)
    total = 0
    try:
        with gzip.open(path, "rb") as fh:
            while True:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    return
                total += len(chunk)
                if total > cap:
                    _refuse_bomb(path, cap)
    except (OSError, EOFError, zlib.error):
        return  # damaged: MNE's reader reports it


def check_npy_header(path: Path, max_bytes: int) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype a ``.npy`` header declares, checked: a 2-D numeric array whose bytes are all in
    the file and whose float64 copy fits the limit."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(fh, max_header_size=10_000)
            offset = fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, struct.error) as exc:
        raise EEGReadError(f"not a valid .npy file ({_short(exc)})", path) from None
    if dtype.hasobject or not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise EEGReadError(f".npy array must hold plain numbers, got dtype {dtype}; object arrays are refused", path)
    if any((not isinstance(n, int)) or n < 0 for n in shape):
        raise EEGReadError(f".npy header declares an impossible shape {shape}", path)
    if len(shape) != 2:
        raise EEGReadError(f".npy array must be 2-D (channels x samples), got shape {shape}", path)
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    on_disk = path.stat().st_size - offset
    if declared != on_disk:
        raise EEGReadError(f".npy header declares {declared:,} bytes of data ({shape} {dtype}) but the file holds "
                           f"{on_disk:,}: truncated or corrupt", path)
    check_declared_size(path, shape[0], shape[1], max_bytes)
    return shape, dtype


def _short(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg if len(msg) <= 160 else msg[:157] + "..."


# ------------------------------------------------------------------------------------ companion files
def _vhdr_references(path: Path) -> list[str]:
    refs = []
    with open(path, "rb") as fh:
        text = fh.read(1 << 20).decode("latin-1")
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() in ("datafile", "markerfile"):
            refs.append(value.strip())
    return refs


def check_inside_folder(path: Path, referenced: str | os.PathLike, what: str, resolved: bool = False) -> None:
    """Refuse a file ``path`` refers to that is not inside ``path``'s own folder (absolute, ``..``, symlink out).
    ``resolved``: ``referenced`` is a reader's already resolved path (absolute by construction)."""
    home = path.parent.resolve()
    target = (path.parent / referenced).resolve()
    if (not resolved and os.path.isabs(os.fspath(referenced))) or home not in target.parents:
        raise EEGReadError(f"its {what} {os.fspath(referenced)!r} is outside the recording's folder: refused", path)


def check_companions(path: Path) -> None:
    """Before reading: a BrainVision header's ``DataFile=``/``MarkerFile=`` must stay in its folder."""
    if path.name.lower().endswith(".vhdr"):
        for ref in _vhdr_references(path):
            if ref:
                check_inside_folder(path, ref, "DataFile/MarkerFile")


def check_raw_files(path: Path, raw) -> None:
    """After the header, before the samples: every file the reader will read stays in ``path``'s folder
    (an EEGLAB ``.set`` names its ``.fdt`` inside the compressed header)."""
    for f in getattr(raw, "filenames", ()) or ():
        if f is not None and Path(f).resolve() != path.resolve():
            check_inside_folder(path, Path(f), "data file", resolved=True)


def preflight(path: Path, max_bytes: int, confine: bool = False) -> None:
    """Every check that can run before a reader touches the samples of ``path``."""
    name = path.name.lower()
    if confine:
        check_companions(path)
    if name.endswith(".set"):
        check_mat_file(path, max_bytes)
        probe_mat_reader(path, max_bytes)
    elif name.endswith(".fif.gz") or name.endswith(".gz"):
        check_gzip_file(path, max_bytes)


__all__ = ["max_eeg_bytes", "check_declared_size", "check_npy_header", "check_mat_file", "check_gzip_file",
           "check_companions", "check_raw_files", "check_inside_folder", "preflight", "DEFAULT_MAX_EEG_MB",
           "APP_MAX_EEG_MB", "ENV_MAX_EEG_MB"]
