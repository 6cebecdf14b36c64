"""Writers of paired-dataset fixtures in the exact file layouts the loaders read.

* EEGCVPR40: ``eeg_5_95_std.pth`` (torch.save of the authors' dict), ``block_splits_by_image_*.pth``
  and ``imageNet_images/<wnid>/<name>.JPEG`` written with PIL.
* THINGS-EEG2: ``sub-01/preprocessed_eeg_{training,test}.npy`` (np.save of a dict, as released)
  plus ``training_images/<00001_concept>/<file>.jpg`` and ``test_images/...``.
* A folder + CSV around spkit's real 14-channel Emotiv recording (conftest's ``spkit_raw``), saved as FIF
  with MNE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

WNIDS = ["n02690373", "n03590841", "n02510455", "n02951358"]  # airliner, jack-o'-lantern, panda, canoe
COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]


def write_jpeg(path: Path, color=(128, 64, 32), size=(40, 30), seed: int = 0) -> Path:
    """A small real JPEG: a colour plus a little noise, so decoding is not trivial."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(color, dtype=np.int16)[None, None] + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path


@dataclass
class CVPR40:
    root: Path
    eeg_path: Path
    single_path: Path
    all_path: Path
    image_dir: Path
    trials: list = field(default_factory=list)      # the 'dataset' list as written
    images: list = field(default_factory=list)
    single: dict = field(default_factory=dict)      # split name -> indices (subject 4 list)

    def subject_list(self, subject: int) -> list[int]:
        return [i for i, t in enumerate(self.trials) if t["subject"] == subject]


# (subject, L, label, image k within class): lengths include ones outside 450..600 on purpose.
_TRIALS = [
    (4, 500, 0, 0), (4, 450, 1, 0), (4, 600, 2, 0), (4, 449, 3, 0), (4, 601, 0, 1),
    (4, 520, 1, 1), (4, 480, 2, 1), (4, 700, 3, 1), (4, 460, 0, 0), (4, 590, 3, 0),
    (1, 500, 0, 0), (1, 440, 1, 1), (1, 510, 2, 0), (6, 530, 3, 1), (6, 300, 0, 1), (6, 555, 1, 0),
]


def write_cvpr40(root: Path, n_chans: int = 128, write_images: bool = True, seed: int = 0) -> CVPR40:
    root.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    images = [f"{w}_{100 + k}" for w in WNIDS for k in range(2)]
    trials = []
    for subject, length, label, k in _TRIALS:
        trials.append({"eeg": torch.randn(n_chans, length, generator=gen), "image": label * 2 + k,
                       "label": label, "subject": subject})
    eeg_path = root / "eeg_5_95_std.pth"
    torch.save({"dataset": trials, "labels": list(WNIDS), "images": images}, eeg_path)
    # Subject 4 has 10 trials (positions 0..9 of its filtered list).
    single = {"train": [0, 1, 2, 3, 4, 5], "val": [6, 7], "test": [8, 9]}
    other = {"train": [9, 8, 7], "val": [0], "test": [1, 2]}
    single_path = root / "block_splits_by_image_single.pth"
    torch.save({"splits": [single, other]}, single_path)
    all_split = {"train": list(range(0, 12)), "val": [12, 13], "test": [14, 15]}
    all_path = root / "block_splits_by_image_all.pth"
    torch.save({"splits": [all_split]}, all_path)
    image_dir = root / "imageNet_images"
    image_dir.mkdir(exist_ok=True)
    if write_images:
        for j, name in enumerate(images):
            write_jpeg(image_dir / name.split("_")[0] / f"{name}.JPEG", COLORS[j // 2], seed=j)
    return CVPR40(root, eeg_path, single_path, all_path, image_dir, trials, images, single)


THINGS_CHANNELS = ["Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3", "POz", "PO4",
                   "PO8", "P6", "P2"]


@dataclass
class Things:
    root: Path
    train: np.ndarray
    test: np.ndarray
    times: np.ndarray
    train_images: list   # (concept folder, file) in condition order
    test_images: list


def write_things(root: Path, n_concepts: int = 3, per_concept: int = 4, n_test: int = 5, n_reps: int = 4,
                 n_test_reps: int = 6, n_times: int = 100, seed: int = 0, metadata: bool = False) -> Things:
    rng = np.random.default_rng(seed)
    times = np.round(np.linspace(-0.2, 0.79, n_times), 4)
    c = len(THINGS_CHANNELS)
    train = rng.standard_normal((n_concepts * per_concept, n_reps, c, n_times)).astype(np.float32)
    test = rng.standard_normal((n_test, n_test_reps, c, n_times)).astype(np.float32)
    sub = root / "sub-01"
    sub.mkdir(parents=True, exist_ok=True)
    for name, arr in (("preprocessed_eeg_training.npy", train), ("preprocessed_eeg_test.npy", test)):
        np.save(sub / name, {"preprocessed_eeg_data": arr, "ch_names": list(THINGS_CHANNELS), "times": times},
                allow_pickle=True)
    concepts = ["aardvark", "banana", "canoe", "dog", "easel", "fork", "goat"]
    train_images, test_images = [], []
    for i in range(n_concepts):
        folder = f"{i + 1:05d}_{concepts[i]}"
        for k in range(per_concept):
            f = f"{concepts[i]}_{k + 1:02d}s.jpg"
            write_jpeg(root / "training_images" / folder / f, COLORS[i % 4], seed=10 * i + k)
            train_images.append((folder, f))
    for i in range(n_test):
        folder = f"{i + 1:05d}_{concepts[-1 - i]}"
        f = f"{concepts[-1 - i]}_01s.jpg"
        write_jpeg(root / "test_images" / folder / f, COLORS[i % 4], seed=100 + i)
        test_images.append((folder, f))
    if metadata:
        np.save(root / "image_metadata.npy", {
            "train_img_concepts": [a for a, _ in train_images], "train_img_files": [b for _, b in train_images],
            "test_img_concepts": [a for a, _ in test_images], "test_img_files": [b for _, b in test_images]},
            allow_pickle=True)
    return Things(root, train, test, times, train_images, test_images)


def write_spkit_fif(raw, path: Path) -> Path:
    """The spkit recording (conftest's ``spkit_raw``) as FIF at ``path``, without electrode positions."""
    raw = raw.copy().set_montage(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.save(path, overwrite=True, verbose="error")
    return path
