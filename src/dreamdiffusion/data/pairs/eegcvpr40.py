"""EEGCVPR40: the EEG-ImageNet set of Spampinato et al. (CVPR 2017), the dataset DreamDiffusion
fine-tunes and tests on, read from the files its authors distribute (``eeg_5_95_std.pth`` +
``block_splits_by_image_*.pth`` + ImageNet JPEGs) and preprocessed as DreamDiffusion does
(length filter, crop 20:460, stretch to 512)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.data.array_transforms import stretch_time
from dreamdiffusion.data.images import load_image
from dreamdiffusion.data.pairs._common import SPLITS, plain_name
from dreamdiffusion.data.safe_load import cached_load, safe_torch_load
from dreamdiffusion.data.transforms import InputSpec

log = logging.getLogger(__name__)

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

        data = cached_load(self.eeg_path, lambda p: safe_torch_load(p, "EEG file"), "pth")
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
            if not plain_name(name):
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
        splits = cached_load(p, lambda q: safe_torch_load(q, "split file"), "pth")
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

