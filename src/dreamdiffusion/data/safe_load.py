"""Safe loading of downloaded data files: nothing in them can run code.

``.pth`` files go through ``torch.load(weights_only=True)``; ``.npy`` dicts (``np.save`` of a dict,
which ``np.load(allow_pickle=True)`` would unpickle with full powers) go through a restricted
unpickler that can only rebuild numpy arrays and plain containers. Anything else in the file is
refused with a :class:`DataError` naming the file, before any of its code can run.

A small cache (:func:`cached_load`) lets the train, val and test datasets of one run share one
multi-GB file.
"""

from __future__ import annotations

import builtins
import codecs
import contextlib
import importlib
import importlib.util
import mmap
import os
import pickle
import re
import threading
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dreamdiffusion.core.errors import DataError, DreamDiffusionError


def _first_line_with(text: str, *needles: str) -> str | None:
    for line in text.splitlines():
        if any(n in line for n in needles):
            return line.strip()
    return None


def _numpy_safe_globals() -> list:
    """numpy's array and scalar rebuilders, under the names numpy 2 and numpy 1 pickle them.

    Data files saved from numpy-based scripts hold numpy arrays or integers (a split list of
    ``np.int64``); these rebuild plain data only, so they are allowed, as in :class:`RestrictedUnpickler`.
    """
    out: list = [np.ndarray, np.dtype]
    out += [cls for cls in vars(importlib.import_module("numpy.dtypes")).values()
            if isinstance(cls, type) and issubclass(cls, np.dtype)]
    for sub, name in RestrictedUnpickler._NUMPY:
        fn = getattr(_numpy_core(sub), name)
        out += [(fn, f"numpy.core.{sub}.{name}"), (fn, f"numpy._core.{sub}.{name}")]
    return out


def safe_torch_load(path: str | os.PathLike, what: str = "data file") -> Any:
    """``torch.load(path, weights_only=True)`` with every failure turned into a :class:`DataError`.

    ``weights_only=True`` rebuilds only tensors and plain containers (dict, list, tuple, str, int,
    float), here also numpy arrays and scalars; a file that names any other Python object (a class
    whose unpickling would run code) is refused before that code runs. Files in torch's zip format
    are memory-mapped, so a 3 GB ``eeg_5_95_std.pth`` is not copied into memory up front.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found", path)
    if path.stat().st_size == 0:
        raise DataError(f"{what} is empty (zero bytes)", path)
    try:
        # mmap only works on torch's zip format (torch >= 1.6 default); older files load whole.
        use_mmap = zipfile.is_zipfile(path)
        allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
        with warnings.catch_warnings(), (allow(_numpy_safe_globals()) if allow else contextlib.nullcontext()):
            # A damaged header reads as an odd pickle protocol; the error below says it better.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        unsafe = _first_line_with(text, "GLOBAL", "Unsupported global", "unsupported global")
        if unsafe:
            # torch's own message suggests weights_only=False or allow-listing; this project does
            # neither, so only the name of the refused object is kept.
            named = re.search(r"GLOBAL\s+([\w.]+)", unsafe)
            what_obj = f"it names {named.group(1)}" if named else unsafe[:120]
            raise DataError(f"refused to load {what}: it holds Python objects that could run code when "
                            f"unpickled ({what_obj}); only tensors, numpy arrays, lists, dicts, numbers and "
                            "strings are accepted. Get the file from its original source", path) from None
        detail = _first_line_with(text, "Unsupported operand", "error:") or text.splitlines()[0][:200]
        raise DataError(f"cannot read {what}: not a torch file or damaged ({detail})", path) from None
    except Exception as exc:  # fuzzing shows struct.error, RuntimeError, ...: all bad input
        msg = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(f"cannot read {what}: not a torch file, truncated or damaged ({msg})", path) from None


def _numpy_core(submodule: str):
    """``numpy._core.<submodule>`` (numpy 2) or ``numpy.core.<submodule>`` (numpy 1)."""
    base = "numpy._core" if importlib.util.find_spec("numpy._core") else "numpy.core"
    return importlib.import_module(f"{base}.{submodule}")


class RestrictedUnpickler(pickle.Unpickler):
    """A pickle reader that can rebuild numpy arrays, numpy scalars and builtin containers only.

    ``np.save`` of a dict writes a pickle, and ``np.load(allow_pickle=True)`` unpickles it with full
    powers: a pickle may name any importable callable (``os.system``...) and call it. Here
    ``find_class`` allows exactly the callables numpy uses to rebuild an array and a few harmless
    builtin types; every other name raises before anything is called.
    """

    # (module as pickled, name) -> where it lives now. Files written by numpy 1 say numpy.core,
    # by numpy 2 numpy._core; both resolve to the installed numpy.
    _NUMPY = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
    _BUILTINS = {"dict", "list", "tuple", "str", "int", "float", "complex", "bool", "bytes", "bytearray",
                 "set", "frozenset"}

    def find_class(self, module: str, name: str):
        for prefix in ("numpy.core.", "numpy._core."):
            sub = module[len(prefix):] if module.startswith(prefix) else None
            if sub is not None and (sub, name) in self._NUMPY:
                return getattr(_numpy_core(sub), name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "numpy.dtypes":  # numpy 2 pickles dtype classes (Float64DType...) by name
            cls = getattr(importlib.import_module("numpy.dtypes"), name, None)
            if isinstance(cls, type) and issubclass(cls, np.dtype):
                return cls
        if module in ("builtins", "__builtin__") and name in self._BUILTINS:
            return getattr(builtins, name)
        if module == "_codecs" and name == "encode":  # protocol-2 pickles spell bytes this way
            return codecs.encode
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def restricted_unpickle(fh) -> Any:
    """Read one pickle from the binary file ``fh`` with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(fh).load()


def load_npy(path: str | os.PathLike, what: str = "data file") -> Any:
    """Read a ``.npy`` file safely: a plain array as is, an object array (``np.save`` of a dict or
    list) through :class:`RestrictedUnpickler`. Returns the array, or for a 0-d object array its
    one object (the dict). Every failure, and every refused object, is a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found", path)
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            if not dtype.hasobject:
                fh.seek(0)
                return np.load(fh, allow_pickle=False)
            # Unpickle from a read-only memory map: a damaged length field then reads at most the
            # rest of the file, where a buffered file would first allocate the claimed size.
            offset = fh.tell()
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
                view.seek(offset)
                obj = restricted_unpickle(view)
    except pickle.UnpicklingError as exc:
        if "refused global" in str(exc):
            raise DataError(f"refused to load {what}: its pickle names {str(exc).split('refused global ')[-1]}, "
                            "which could run code; only numpy arrays, dicts, lists, strings and numbers are "
                            "accepted", path) from None
        raise DataError(f"cannot read {what}: damaged pickle data ({exc})", path) from None
    except DreamDiffusionError:
        raise
    except Exception as exc:  # any failure on untrusted bytes is bad input, not a bug
        msg = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(f"cannot read {what}: not a valid .npy file ({type(exc).__name__}: {msg})", path) from None
    if not isinstance(obj, np.ndarray):
        raise DataError(f"cannot read {what}: the .npy payload is a {type(obj).__name__}, not an array", path)
    if obj.shape == () and obj.dtype.hasobject:
        return obj.item()
    return obj


# A small cache of loaded data files: train, val and test datasets of one run share one 3 GB file.
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2


def cached_load(path: Path, loader: Callable[[Path], Any], kind: str) -> Any:
    """``loader(path)``, remembered while the file's size and modification time stay the same."""
    try:
        st = path.stat()
    except OSError:
        return loader(path)  # the loader names the missing file
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, kind)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    value = loader(path)
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget loaded data files (tests; or to free memory between runs in one process)."""
    with _CACHE_LOCK:
        _CACHE.clear()


__all__ = ["safe_torch_load", "load_npy", "RestrictedUnpickler", "restricted_unpickle", "cached_load",
           "clear_cache"]
