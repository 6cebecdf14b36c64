"""Paired EEG-image datasets for Stage B (fine-tuning), generation and evaluation.

Three sources, one item shape. Every dataset here is a ``torch.utils.data.Dataset`` whose items are
dicts::

    {"eeg": float32 tensor [n_chans, n_times], "image": PIL.Image (RGB), "label": int,
     "subject": int | str, "image_name": str, "index": int}

* :class:`EEGCVPR40`: the EEG-ImageNet set of Spampinato et al. (CVPR 2017) in the files its
  authors distribute (``eeg_5_95_std.pth`` + ``block_splits_by_image_*.pth`` + ImageNet JPEGs),
  preprocessed as DreamDiffusion does (length filter, crop 20:460, stretch to 512).
* :class:`ThingsEEG2`: the preprocessed THINGS-EEG2 release (Gifford et al. 2022).
* :class:`FolderPairs`: a user's own folder of EEG files plus a CSV of onsets and images.

A name registry (:data:`PAIRED_DATASETS`, :func:`open_paired_dataset`,
:func:`register_paired_dataset`) and :func:`paired_dataset_options` give ``finetune``,
``generate`` and ``evaluate`` one way of selecting data from CLI options.

Safe loading: downloaded data files are never fully unpickled. ``.pth`` files go through
``torch.load(weights_only=True)``; THINGS-EEG2's ``.npy`` dicts (``np.save`` of a dict, which
``np.load(allow_pickle=True)`` would unpickle with full powers) go through a restricted unpickler
that can only rebuild numpy arrays and plain containers. Anything else in the file is refused with
a :class:`DataError` naming the file, before any of its code can run.
"""

from __future__ import annotations

import builtins
import codecs
import contextlib
import csv
import hashlib
import importlib
import importlib.util
import inspect
import io
import logging
import math
import mmap
import os
import pickle
import re
import threading
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from dreamdiffusion.data.images import load_image
from dreamdiffusion.data.transforms import (InputSpec, map_channels_montage, map_channels_repeat,
                                            normalize_windows, standardize_raw, stretch_time, window_at)
from dreamdiffusion.core.errors import ConfigError, DataError, DreamDiffusionError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")

# =============================================================================================
# Safe loading


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
    except Exception as exc:  # noqa: BLE001 - fuzzing shows struct.error, RuntimeError, ...: all bad input
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
    except Exception as exc:  # noqa: BLE001 - any failure on untrusted bytes is bad input, not a bug
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


def _cached_load(path: Path, loader: Callable[[Path], Any], kind: str) -> Any:
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


# =============================================================================================
# Small validators (every malformed field names the file and the entry)


def _is_int(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, torch.Tensor) and v.ndim == 0 and not v.is_floating_point() and not v.is_complex() \
        and v.dtype != torch.bool


def _as_index_list(v, path: Path, where: str) -> list[int]:
    if isinstance(v, np.ndarray):
        if v.ndim != 1 or v.dtype.kind not in "iu":
            raise DataError(f"{where} must be a list of integer indices, got an array {v.shape} {v.dtype}", path)
        return [int(i) for i in v.tolist()]
    if isinstance(v, torch.Tensor):
        if v.ndim != 1 or v.is_floating_point() or v.is_complex() or v.dtype == torch.bool:
            raise DataError(f"{where} must be a list of integer indices, got a tensor {tuple(v.shape)} {v.dtype}", path)
        return [int(i) for i in v.tolist()]
    if not isinstance(v, (list, tuple)):
        raise DataError(f"{where} must be a list of integer indices, got {type(v).__name__}", path)
    out = []
    for i in v:
        if not _is_int(i):
            raise DataError(f"{where} holds {type(i).__name__} {i!r:.40}, not an integer index", path)
        out.append(int(i))
    return out


def _tensor_2d(x, path: Path, where: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise DataError(f"{where}: EEG array has dtype {x.dtype}, expected real numbers", path)
        x = torch.from_numpy(np.asarray(x))
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{where}: EEG must be a tensor [channels, samples], got {type(x).__name__}", path)
    if x.ndim != 2:
        raise DataError(f"{where}: EEG must be 2-D [channels, samples], got shape {tuple(x.shape)}", path)
    if x.dtype == torch.bool or x.is_complex():
        raise DataError(f"{where}: EEG has dtype {x.dtype}, expected real numbers", path)
    return x


# =============================================================================================
# EEGCVPR40 (Spampinato et al. 2017; the dataset DreamDiffusion fine-tunes and tests on)

# The 40 ImageNet classes of the dataset (WordNet ids -> ImageNet lemma). The file's ``labels`` list
# gives their order; this table only supplies readable names.
IMAGENET40_NAMES: dict[str, str] = {
    "n02106662": "German shepherd", "n02124075": "Egyptian cat", "n02281787": "lycaenid butterfly",
    "n02389026": "sorrel", "n02492035": "capuchin", "n02504458": "African elephant",
    "n02510455": "giant panda", "n02607072": "anemone fish", "n02690373": "airliner",
    "n02823428": "beer bottle", "n02951358": "canoe", "n02992529": "cellular telephone",
    "n03063599": "coffee mug", "n03100240": "convertible", "n03180011": "desktop computer",
    "n03197337": "digital watch", "n03272010": "electric guitar", "n03272562": "electric locomotive",
    "n03297495": "espresso maker", "n03376595": "folding chair", "n03445777": "golf ball",
    "n03452741": "grand piano", "n03584829": "iron", "n03590841": "jack-o'-lantern",
    "n03637318": "lampshade", "n03709823": "mailbag", "n03773504": "missile", "n03775071": "mitten",
    "n03792782": "mountain bike", "n03888605": "parallel bars", "n03982430": "pool table",
    "n04044716": "radio telescope", "n04069434": "reflex camera", "n04086273": "revolver",
    "n04120489": "running shoe", "n07753592": "banana", "n07873807": "pizza", "n11939491": "daisy",
    "n13044778": "earthstar", "n13054560": "bolete",
}

# The three classes Brain2Image (Kavasidis et al. 2017) showed, used for its qualitative comparison.
BRAIN2IMAGE_CLASSES: dict[str, str] = {"n02690373": "airliner", "n03590841": "jack-o'-lantern",
                                       "n02510455": "giant panda"}



def _plain_name(name: str) -> bool:
    """A file name that stays inside its folder: no separators, no '..', no NUL, not hidden.

    Names come from downloaded files; one like ``../../x`` must not reach outside the image folder.
    """
    return (isinstance(name, str) and 0 < len(name) <= 255 and not name.startswith(".")
            and not any(ch in name for ch in ("/", "\\", "\x00")))


class EEGCVPR40(Dataset):
    """The EEG-ImageNet dataset (Spampinato et al., CVPR 2017) as DreamDiffusion uses it.

    Parameters
    ----------
    eeg_path : ``eeg_5_95_std.pth``: a dict with ``dataset`` (list of ``{"eeg": FloatTensor [128, L],
        "image": int, "label": int 0-39, "subject": int 1-6}``), ``labels`` (40 WordNet ids) and
        ``images`` (names like ``n02951358_31190``).
    splits_path : ``block_splits_by_image_single.pth`` (or ``_all.pth``):
        ``["splits"][split_index][split]`` lists indices into the subject-filtered trial list (the
        whole list when ``subject=0``).
    image_dir : folder with ``<wnid>/<image name>.JPEG``.
    split : ``"train"``, ``"val"`` or ``"test"``. DreamDiffusion's reference code validates and
        selects checkpoints on ``test``; this project uses ``val`` for that.
    subject : 1-6, or 0 for all subjects (paper: 4).
    split_index : which of the file's splits (paper: 0).
    length_range : trials kept when ``low <= L <= high`` samples (paper: 450..600).
    crop : samples kept, ``[start, stop)`` (paper: 20:460, i.e. 20-460 ms at 1 kHz).
    n_times : the cropped samples are stretched to this many by linear interpolation with aligned
        end points (paper: 512).
    check_images : check at construction that every image of the split exists, so a missing file
        stops the run before training, not hours into it.
    """

    def __init__(self, eeg_path: str | os.PathLike, splits_path: str | os.PathLike, image_dir: str | os.PathLike,
                 split: str = "train", subject: int = 4, split_index: int = 0,
                 length_range: tuple[int, int] = (450, 600), crop: tuple[int, int] = (20, 460),
                 n_times: int = 512, check_images: bool = True):
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        self.eeg_path, self.splits_path, self.image_dir = Path(eeg_path), Path(splits_path), Path(image_dir)
        self.split, self.subject, self.split_index = split, int(subject), int(split_index)
        self.crop, self.n_times = (int(crop[0]), int(crop[1])), int(n_times)
        if not 0 <= self.crop[0] < self.crop[1] or self.n_times < 2:
            raise ConfigError(f"crop must be 0 <= start < stop and n_times >= 2, got {crop}, {n_times}")
        if not self.image_dir.is_dir():
            raise DataError("image folder not found (pass the folder holding <wnid>/<name>.JPEG, e.g. "
                            "imageNet_images/)", self.image_dir)

        data = _cached_load(self.eeg_path, lambda p: safe_torch_load(p, "EEG file"), "pth")
        trials, self.wnids, self.image_names = self._check_eeg_file(data)
        self._trials = trials

        # Subject filter first, then the split's indices into the filtered list (the authors' order).
        if self.subject == 0:
            pool = list(range(len(trials)))
        else:
            pool = [i for i, t in enumerate(trials) if int(t["subject"]) == self.subject]
            if not pool:
                present = sorted({int(t["subject"]) for t in trials})
                raise DataError(f"no trials of subject {self.subject} (subjects present: {present}; "
                                "subject=0 takes all)", self.eeg_path)
        indices = self._read_split(len(pool))

        low, high = int(length_range[0]), int(length_range[1])
        keep, dropped = [], 0
        for k in indices:
            length = int(trials[pool[k]]["eeg"].shape[1])
            if low <= length <= high:
                keep.append(pool[k])
            else:
                dropped += 1
        if dropped:
            log.info("%s: %s split %d: %d of %d trials dropped for length outside %d..%d samples",
                     self.splits_path.name, split, self.split_index, dropped, len(indices), low, high)
        if not keep:
            raise DataError(f"split {split!r} (index {self.split_index}, subject {self.subject}) holds no trial of "
                            f"{low}..{high} samples", self.splits_path)
        if keep and min(int(trials[i]["eeg"].shape[1]) for i in keep) <= self.crop[0] + 1:
            raise DataError(f"trials too short for the crop {self.crop}", self.eeg_path)
        self.trial_indices = keep  # positions in the file's ``dataset`` list
        self._labels = [int(trials[i]["label"]) for i in keep]
        self.spec = self._equivalent_spec()
        self.n_dropped = dropped
        if check_images:
            self.check_images()

    # -- file checks ---------------------------------------------------------------------------
    def _equivalent_spec(self) -> InputSpec:
        """How a raw 1 kHz recording would become this dataset's input (saved with a fine-tuned
        model, so generation from a user's file matches): the file's band (``eeg_5_95_std`` ->
        5-95 Hz), the cropped span stretched to ``n_times`` (440 ms -> 512 samples = 1163.6 Hz),
        no further normalisation (the provider z-scored the data: "std")."""
        band = re.search(r"eeg_(\d+)_(\d+)", self.eeg_path.name)
        l_freq, h_freq = (float(band.group(1)), float(band.group(2))) if band else (5.0, 95.0)
        if not l_freq < h_freq:
            l_freq, h_freq = 5.0, 95.0
        span_s = (self.crop[1] - self.crop[0]) / 1000.0  # the recordings are at 1 kHz
        return InputSpec(n_chans=self.n_chans, n_times=self.n_times, sfreq=self.n_times / span_s,
                         l_freq=l_freq, h_freq=h_freq, normalize="none")

    def _check_eeg_file(self, data) -> tuple[list, list[str], list[str]]:
        p = self.eeg_path
        if not isinstance(data, dict):
            raise DataError(f"expected a dict with 'dataset', 'labels', 'images', got {type(data).__name__}", p)
        missing = [k for k in ("dataset", "labels", "images") if k not in data]
        if missing:
            raise DataError(f"missing key(s) {missing}; expected the eeg_*_std.pth layout "
                            "(dataset, labels, images)", p)
        trials, labels, images = data["dataset"], data["labels"], data["images"]
        for name, v in (("dataset", trials), ("labels", labels), ("images", images)):
            if not isinstance(v, (list, tuple)):
                raise DataError(f"'{name}' must be a list, got {type(v).__name__}", p)
        if not trials:
            raise DataError("'dataset' holds no trials", p)
        for name, v in (("labels", labels), ("images", images)):
            bad = [x for x in v if not isinstance(x, str)]
            if bad:  # (a list, not next(..., None): the bad value may itself be None)
                raise DataError(f"'{name}' must hold strings, found {type(bad[0]).__name__}", p)
        for name in images:
            if not _plain_name(name):
                raise DataError(f"image name {name[:60]!r} is not a plain file name", p)
        n_chans = None
        for i, t in enumerate(trials):
            where = f"dataset[{i}]"
            if not isinstance(t, dict):
                raise DataError(f"{where} must be a dict, got {type(t).__name__}", p)
            lost = [k for k in ("eeg", "image", "label", "subject") if k not in t]
            if lost:
                raise DataError(f"{where} lacks {lost}", p)
            eeg = _tensor_2d(t["eeg"], p, where)
            if eeg.shape[0] < 1:
                raise DataError(f"{where}: EEG has no channels, shape {tuple(eeg.shape)}", p)
            if n_chans is None:
                n_chans = eeg.shape[0]
            elif eeg.shape[0] != n_chans:
                raise DataError(f"{where}: {eeg.shape[0]} channels, but earlier trials have {n_chans}", p)
            for k in ("image", "label", "subject"):
                if not _is_int(t[k]):
                    raise DataError(f"{where}['{k}'] must be an integer, got {type(t[k]).__name__}", p)
            if not 0 <= int(t["image"]) < len(images):
                raise DataError(f"{where}['image'] = {int(t['image'])} is outside the {len(images)} image names", p)
            if not 0 <= int(t["label"]) < len(labels):
                raise DataError(f"{where}['label'] = {int(t['label'])} is outside the {len(labels)} labels", p)
        self.n_chans = int(n_chans)
        return list(trials), list(labels), list(images)

    def _read_split(self, n_pool: int) -> list[int]:
        p = self.splits_path
        splits = _cached_load(p, lambda q: safe_torch_load(q, "split file"), "pth")
        if not isinstance(splits, dict) or "splits" not in splits:
            raise DataError("expected a dict with 'splits' (the block_splits_by_image_*.pth layout)", p)
        table = splits["splits"]
        if not isinstance(table, (list, tuple)):
            raise DataError(f"'splits' must be a list, got {type(table).__name__}", p)
        if not 0 <= self.split_index < len(table):
            raise DataError(f"split index {self.split_index} out of range: the file holds {len(table)} split(s)", p)
        entry = table[self.split_index]
        if not isinstance(entry, dict) or self.split not in entry:
            keys = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
            raise DataError(f"splits[{self.split_index}] has no {self.split!r} list (found {keys})", p)
        indices = _as_index_list(entry[self.split], p, f"splits[{self.split_index}][{self.split!r}]")
        bad = [i for i in indices if not 0 <= i < n_pool]
        if bad:
            who = "all subjects" if self.subject == 0 else f"subject {self.subject}"
            raise DataError(f"split indices out of range: {len(bad)} of {len(indices)} (e.g. {bad[0]}) are not in "
                            f"0..{n_pool - 1}, the {n_pool} trials of {who}. A '_single' split indexes one "
                            "subject's trials, an '_all' split all subjects' (subject=0)", p)
        return indices

    # -- public ----------------------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Readable class names in label order (the WordNet id where the name is unknown)."""
        return [IMAGENET40_NAMES.get(w, w) for w in self.wnids]

    @property
    def labels(self) -> list[int]:
        return list(self._labels)

    def image_name(self, index: int) -> str:
        return self.image_names[int(self._trials[self.trial_indices[index]]["image"])]

    def image_path(self, index_or_name: int | str) -> Path:
        name = index_or_name if isinstance(index_or_name, str) else self.image_name(index_or_name)
        return self.image_dir / name.split("_")[0] / f"{name}.JPEG"

    def check_images(self) -> None:
        """Raise a :class:`DataError` naming the first missing image of this split (and the count)."""
        names = sorted({self.image_name(i) for i in range(len(self))})
        missing = [n for n in names if not self.image_path(n).is_file()]
        if missing:
            raise DataError(f"{len(missing)} of the {len(names)} images of split {self.split!r} are missing under "
                            f"{self.image_dir} (first: {self.image_path(missing[0]).relative_to(self.image_dir)})",
                            self.image_path(missing[0]))

    def indices_of_classes(self, wnids: Sequence[str]) -> list[int]:
        """Dataset indices whose class is one of ``wnids``."""
        wanted = {self.wnids.index(w) for w in wnids if w in self.wnids}
        return [i for i, lab in enumerate(self._labels) if lab in wanted]

    def image_paths(self, wnids: Sequence[str] | None = None) -> dict[str, list[Path]]:
        """``{wnid: sorted distinct image paths of this split}`` for ``wnids`` (default: all classes).

        ``image_paths(BRAIN2IMAGE_CLASSES)`` lists the images of Brain2Image's three classes
        (airliner, jack-o'-lantern, giant panda) for the qualitative comparison.
        """
        wnids = list(self.wnids if wnids is None else wnids)
        out: dict[str, set] = {w: set() for w in wnids}
        for i, label in enumerate(self._labels):
            w = self.wnids[label]
            if w in out:
                out[w].add(self.image_path(i))
        return {w: sorted(v) for w, v in out.items()}

    def eeg(self, index: int) -> torch.Tensor:
        """The preprocessed EEG of item ``index``: crop, then stretch to ``n_times``. ``[C, n_times]``."""
        t = self._trials[self.trial_indices[index]]
        x = _tensor_2d(t["eeg"], self.eeg_path, f"dataset[{self.trial_indices[index]}]")
        x = x[:, self.crop[0]:self.crop[1]].to(torch.float32).numpy()
        if not np.isfinite(x).all():
            raise DataError(f"dataset[{self.trial_indices[index]}] holds NaN or Inf samples", self.eeg_path)
        return torch.from_numpy(np.ascontiguousarray(stretch_time(x, self.n_times), dtype=np.float32))

    def __len__(self) -> int:
        return len(self.trial_indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index = index % len(self)
        t = self._trials[self.trial_indices[index]]
        name = self.image_name(index)
        return {"eeg": self.eeg(index), "image": load_image(self.image_path(name)), "label": int(t["label"]),
                "subject": int(t["subject"]), "image_name": name, "index": index}


# =============================================================================================
# THINGS-EEG2 (Gifford et al. 2022), the preprocessed release


def _as_spec(spec: InputSpec | dict | None, **overrides) -> InputSpec:
    if spec is None:
        spec = InputSpec()
    elif isinstance(spec, dict):
        spec = InputSpec.from_dict(spec)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(spec, **overrides) if overrides else spec


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
        self.spec = _as_spec(spec, n_chans=n_chans, n_times=n_times, channel_mapping=channel_mapping)

        self.eeg_path = self._find_eeg_file()
        data = _cached_load(self.eeg_path, lambda p: load_npy(p, "THINGS-EEG2 EEG file"), "npy")
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
            if not (_plain_name(c) and _plain_name(f)):
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


# =============================================================================================
# A user's own folder of EEG files + CSV


def _split_of(key: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of one image: a hash, so adding rows never moves existing images."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2.0 ** 64
    return "val" if u < val_fraction else "test" if u < val_fraction + test_fraction else "train"


def _read_raw(path: Path, sfreq: float | None):
    from dreamdiffusion.data.io import read_raw  # MNE underneath; EEGReadError names the file

    return read_raw(path, sfreq=sfreq)


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
                 n_chans: int | None = None, n_times: int | None = None, channel_mapping: str | None = None):
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
        self.spec = _as_spec(spec, n_chans=n_chans, n_times=n_times, channel_mapping=channel_mapping)
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
            data = standardize_raw(_read_raw(path, sfreq), self.spec)  # once per file, not per epoch
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


# =============================================================================================
# Registry


def _open_eegcvpr40(split: str = "train", **options) -> EEGCVPR40:
    return EEGCVPR40(split=split, **options)


def _open_things(split: str = "train", **options) -> ThingsEEG2:
    return ThingsEEG2(split=split, **options)


def _open_folder(split: str = "train", **options) -> FolderPairs:
    return FolderPairs(split=split, **options)


# name -> factory(split=..., **options) returning a Dataset of paired items.
PAIRED_DATASETS: dict[str, Callable[..., Dataset]] = {
    "eegcvpr40": _open_eegcvpr40,
    "things-eeg2": _open_things,
    "folder": _open_folder,
}
# The parameters the built-in factories take (their classes' signatures).
_SIGNATURES = {"eegcvpr40": EEGCVPR40, "things-eeg2": ThingsEEG2, "folder": FolderPairs}
# Modules that register more datasets when imported (the built-in synthetic benchmark).
_PLUGIN_MODULES = ("dreamdiffusion.data.synthetic",)
_plugins_loaded = False


def register_paired_dataset(name: str, factory: Callable[..., Dataset], overwrite: bool = False) -> None:
    """Make ``open_paired_dataset(name, split, **options)`` call ``factory(split=split, **options)``."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", name):
        raise ValueError(f"dataset names are lower-case words, got {name!r}")
    if name in PAIRED_DATASETS and PAIRED_DATASETS[name] is not factory and not overwrite:
        raise ValueError(f"a paired dataset named {name!r} is already registered")
    PAIRED_DATASETS[name] = factory


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for mod in _PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            if exc.name != mod:  # the module exists but is broken: say so
                log.warning("could not load %s: %s", mod, exc)


def available_paired_datasets() -> list[str]:
    _load_plugins()
    return sorted(PAIRED_DATASETS)


def _factory(name: str) -> Callable[..., Dataset]:
    if name not in PAIRED_DATASETS:
        _load_plugins()
    if name not in PAIRED_DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(available_paired_datasets())}")
    return PAIRED_DATASETS[name]


def open_paired_dataset(name: str, split: str = "train", **options) -> Dataset:
    """Open the paired dataset registered as ``name`` (``eegcvpr40``, ``things-eeg2``, ``folder``,
    ``synthetic``, ...) for ``split`` with its options; an option it does not take is a
    :class:`ConfigError` that lists the ones it does."""
    factory = _factory(name)
    target = _SIGNATURES.get(name, factory)
    try:
        sig = inspect.signature(target)
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
                  "split_index": "split_index", "root": None, "csv": None},
    "things-eeg2": {"eeg": None, "splits": None, "images": "image_root", "subject": "subject",
                    "split_index": None, "root": "root", "csv": None},
    "folder": {"eeg": None, "splits": None, "images": "image_root", "subject": "subject", "split_index": None,
               "root": "root", "csv": "csv_path"},
}
# Conventional names inside an EEGCVPR40 --root (the layout of the authors' download).
EEGCVPR40_DEFAULT_FILES = {"eeg_path": "eeg_5_95_std.pth", "splits_path": "block_splits_by_image_single.pth",
                           "image_dir": "imageNet_images"}


def paired_dataset_options(dataset: str, *, eeg: str | os.PathLike | None = None,
                           splits: str | os.PathLike | None = None, images: str | os.PathLike | None = None,
                           subject: int | str | None = None, split_index: int | None = None,
                           root: str | os.PathLike | None = None, csv: str | os.PathLike | None = None,
                           **extra) -> dict[str, Any]:
    """Turn the shared CLI options (``--eeg --splits --images --subject --split-index --root --csv``)
    into keyword options for ``open_paired_dataset(dataset, split, **options)``.

    Options the dataset does not use are a :class:`ConfigError`; so is a missing required one. For
    ``eegcvpr40``, ``--root DIR`` fills the files not given from the download's layout
    (``DIR/eeg_5_95_std.pth``, ``DIR/block_splits_by_image_single.pth``, ``DIR/imageNet_images``).
    ``extra`` (non-None values) is passed through as is.
    """
    given = {"eeg": eeg, "splits": splits, "images": images, "subject": subject, "split_index": split_index,
             "root": root, "csv": csv}
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
