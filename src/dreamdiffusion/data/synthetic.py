"""The built-in benchmark: real images (scikit-learn's 1,797 handwritten digits) and simulated
visual evoked EEG on a 128-channel montage, so the whole method runs on a CPU in minutes.

The simulated "brain" (fixed by the seed):

- **Sources.** ``N_SOURCES`` patches of posterior cortex, each seen on the scalp as a dipole-like
  topography (a positive and a weaker negative Gaussian blob over the BioSemi-128 positions of MNE's
  standard montage).
- **Evoked components.** Four components with the latencies of a visual ERP: P1 (~100 ms),
  N1 (~170 ms), P2 (~230 ms), P3 (~350 ms), each a Gaussian bump in time.
- **What the image does.** The amplitude of each (source, component) pair is a baseline plus a fixed
  random linear map of the image's pixel features (within-class detail) plus a fixed random
  class-level pattern (semantics). So the EEG carries both what digit was seen and how it was drawn.
- **Subjects.** Each subject has an overall gain, per-source gains, a latency shift and an alpha
  frequency; each trial adds latency jitter and amplitude noise.
- **Background.** Spatially correlated 1/f ("pink") activity from random smooth sources, an
  occipital alpha rhythm with random phase and amplitude, and white sensor noise. ``snr`` is the
  ratio of evoked RMS to background RMS; the background has about unit variance per channel, so the
  EEG is in z-scored units.

Windows are ``[128, 512]`` at the model's rate (``PAPER_SFREQ`` = 512 / 0.44 s), starting 20 ms after
image onset as in EEGCVPR40 after its 20-sample crop. Splits are by image (``test`` images never
appear in ``train`` or in the pretraining corpus). Everything is a function of ``seed``.

Layout written by :func:`build_benchmark`::

    DIR/benchmark.json   description: parameters, channel names, components, counts, files
    DIR/eeg.npy          float32 [n_trials, 128, 512]
    DIR/trials.json      {"image_index": [...], "subject": [...]} per trial
    DIR/images.npy       uint8 [n_images, R, R, 3] (the digits, upsampled, white ink on black)
    DIR/labels.npy       int64 [n_images]
    DIR/splits.json      {"train": [image indices], "val": [...], "test": [...]}
    DIR/corpus/          unlabeled windows of the same generator (dreamdiffusion corpus format)
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreamdiffusion.core.constants import PAPER_SFREQ
from dreamdiffusion.core.errors import DataError
from dreamdiffusion.core.files import require_free_space, staged_folder
from dreamdiffusion.core.ridge import RidgeSearch
from dreamdiffusion.data.array_transforms import center_by_subject, subject_means
from dreamdiffusion.data.corpus import CorpusWriter, read_manifest
from dreamdiffusion.data.montage import make_montage
from dreamdiffusion.data.transforms import InputSpec, binned_means

logger = logging.getLogger(__name__)

FORMAT_NAME = "dreamdiffusion-synthetic"
GENERATOR_VERSION = 1  # bump when the generator changes, so cached benchmarks are not reused
N_CHANS, N_TIMES = 128, 512
SFREQ = PAPER_SFREQ
T_START = 0.020  # s after image onset of the first sample
MONTAGE = "biosemi128"
N_SOURCES = 6
N_BACKGROUND_SOURCES = 16
# (name, latency s, width s, polarity): a textbook visual ERP.
COMPONENTS = (("P1", 0.100, 0.015, +1.0), ("N1", 0.170, 0.020, -1.0),
              ("P2", 0.230, 0.025, +1.0), ("P3", 0.350, 0.045, +1.0))
FEATURE_GAIN = 0.7  # weight of the pixel-feature term in the component amplitudes
CLASS_GAIN = 0.7  # weight of the class-level term
SENSOR_NOISE = 0.3  # share of the background variance that is white sensor noise
ALPHA_SHARE = 0.35  # share of the background variance that is alpha
CHUNK = 256  # trials simulated at once (bounds memory)


# ----------------------------------------------------------------------------- images
def load_digit_images(resolution: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``uint8 [1797, R, R, 3]`` RGB (white ink on black) and ``int64`` labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)  # [N, 8, 8], 0..16 -> 0..255
    out = np.empty((len(small), resolution, resolution, 3), np.uint8)
    for i, img in enumerate(small):
        big = Image.fromarray(img).resize((resolution, resolution), Image.Resampling.BICUBIC)
        out[i] = np.asarray(big.convert("RGB"))
    return out, digits.target.astype(np.int64)


def image_features(images: np.ndarray) -> np.ndarray:
    """Pixel features the simulated brain reads: the 8x8 digit, standardised, ``[N, 64]``."""
    from sklearn.datasets import load_digits

    if len(images) == 1797:  # the real 8x8 pixels are the cleanest features of these images
        x = load_digits().data.astype(np.float64)
    else:
        x = images.mean(-1).reshape(len(images), -1).astype(np.float64)
    x = x - x.mean(0)
    return x / (x.std(0) + 1e-6) / np.sqrt(x.shape[1])


# ----------------------------------------------------------------------------- the brain
def montage_positions() -> tuple[list[str], np.ndarray]:
    """Channel names and unit-sphere positions ``[128, 3]`` of MNE's BioSemi-128 montage."""
    montage = make_montage(MONTAGE)
    pos = montage.get_positions()["ch_pos"]
    names = list(montage.ch_names)[:N_CHANS]
    xyz = np.array([pos[n] for n in names], dtype=np.float64)
    xyz -= xyz.mean(0)
    return names, xyz / np.linalg.norm(xyz, axis=1, keepdims=True)


def _blob(xyz: np.ndarray, center: np.ndarray, width: float) -> np.ndarray:
    d2 = ((xyz - center) ** 2).sum(1)
    return np.exp(-d2 / (2 * width ** 2))


def _dipole_topography(rng: np.random.Generator, xyz: np.ndarray, posterior: bool) -> np.ndarray:
    """A positive and a weaker, displaced negative blob: what a tangential-ish dipole looks like."""
    candidates = np.where(xyz[:, 1] < -0.2)[0] if posterior else np.arange(len(xyz))
    c = xyz[rng.choice(candidates)]
    c2 = xyz[rng.integers(len(xyz))]
    width = rng.uniform(0.25, 0.45)
    topo = _blob(xyz, c, width) - rng.uniform(0.3, 0.8) * _blob(xyz, c2, width * 1.3)
    return topo / np.linalg.norm(topo) * np.sqrt(len(xyz))  # RMS 1 over channels


def _mix(topographies: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Project source time courses ``[N, S, T]`` to the scalp with ``topographies [S, C]`` -> ``[N, C, T]``.

    One 2-D product (tensordot): numpy's broadcast batched matmul is many times slower here.
    """
    return np.ascontiguousarray(np.tensordot(sources, topographies, axes=([1], [0])).transpose(0, 2, 1))


class SimulatedBrain:
    """The fixed, seeded mapping from an image to evoked EEG, plus the background generator."""

    def __init__(self, seed: int, n_subjects: int, n_features: int = 64, n_classes: int = 10):
        rng = np.random.default_rng([seed, 1])
        self.ch_names, xyz = montage_positions()
        n_comp = len(COMPONENTS)
        self.topographies = np.stack([_dipole_topography(rng, xyz, True) for _ in range(N_SOURCES)])  # [K, C]
        self.background_topographies = np.stack(
            [_dipole_topography(rng, xyz, False) for _ in range(N_BACKGROUND_SOURCES)])  # [B, C]
        occipital = _blob(xyz, xyz[np.argmin(xyz[:, 1])], 0.5)
        self.alpha_topography = occipital / np.linalg.norm(occipital) * np.sqrt(len(xyz))  # [C]
        self.baseline = rng.uniform(0.5, 1.0, (N_SOURCES, n_comp))  # [K, J]
        self.feature_map = rng.standard_normal((n_features, N_SOURCES * n_comp))  # [F, K*J]
        self.class_patterns = rng.standard_normal((n_classes, N_SOURCES, n_comp))  # [10, K, J]
        self.subject_gain = rng.uniform(0.7, 1.3, n_subjects)
        self.subject_source_gain = np.exp(0.2 * rng.standard_normal((n_subjects, N_SOURCES)))
        self.subject_shift = 0.008 * rng.standard_normal(n_subjects)  # s
        self.subject_alpha = rng.uniform(8.5, 11.5, n_subjects)  # Hz
        self.times = T_START + np.arange(N_TIMES) / SFREQ  # [T]
        self.evoked_scale = 1.0
        # Normalise the evoked part to unit RMS over a fixed reference set, so `snr` means what it says.
        ref_feats = np.random.default_rng([seed, 2]).standard_normal((64, n_features)) / np.sqrt(n_features)
        ref = self.evoked(ref_feats, np.arange(64) % n_classes, np.arange(64) % n_subjects,
                          np.random.default_rng([seed, 3]))
        self.evoked_scale = 1.0 / float(np.sqrt((ref ** 2).mean()))

    def amplitudes(self, features: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Component amplitudes ``[N, K, J]`` for images with ``features [N, F]`` and ``labels [N]``."""
        n, n_comp = len(features), len(COMPONENTS)
        feat = (features @ self.feature_map).reshape(n, N_SOURCES, n_comp)
        return self.baseline[None] * (1.0 + FEATURE_GAIN * np.tanh(feat)) + CLASS_GAIN * self.class_patterns[labels]

    def evoked_sources(self, features: np.ndarray, labels: np.ndarray, subjects: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
        """Time courses ``[N, K, T]`` of the evoked sources (scaled so the scalp RMS is about 1)."""
        n, n_comp = len(features), len(COMPONENTS)
        amp = self.amplitudes(features, labels)  # [N, K, J]
        amp = amp * np.exp(0.15 * rng.standard_normal(amp.shape))  # trial-to-trial variability
        amp = amp * (self.subject_gain[subjects, None, None] * self.subject_source_gain[subjects][:, :, None])
        lat = np.array([c[1] for c in COMPONENTS])[None] + self.subject_shift[subjects, None] \
            + 0.008 * rng.standard_normal((n, n_comp))  # [N, J]
        width = np.array([c[2] for c in COMPONENTS])
        polarity = np.array([c[3] for c in COMPONENTS])
        waves = polarity[None, :, None] * np.exp(
            -((self.times[None, None] - lat[:, :, None]) ** 2) / (2 * width[None, :, None] ** 2))  # [N, J, T]
        return (amp[:, :, :, None] * waves[:, None]).sum(2) * self.evoked_scale  # [N, K, T]

    def evoked(self, features: np.ndarray, labels: np.ndarray, subjects: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
        """Evoked EEG ``[N, C, T]`` (unit RMS on average, before ``snr``)."""
        return _mix(self.topographies, self.evoked_sources(features, labels, subjects, rng))

    def background_sources(self, subjects: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Unit-variance time courses ``[N, B + 1, T]``: B pink-noise cortical sources, then alpha."""
        n = len(subjects)
        freqs = np.fft.rfftfreq(N_TIMES, 1.0 / SFREQ)
        shape = np.zeros_like(freqs)
        shape[1:] = 1.0 / np.sqrt(freqs[1:])  # amplitude ~ f^-1/2, power ~ 1/f
        spec = rng.standard_normal((n, N_BACKGROUND_SOURCES, len(freqs))) \
            + 1j * rng.standard_normal((n, N_BACKGROUND_SOURCES, len(freqs)))
        pink = np.fft.irfft(spec * shape, n=N_TIMES, axis=-1)  # [N, B, T]
        pink /= pink.std(axis=-1, keepdims=True) + 1e-12
        phase = rng.uniform(0, 2 * np.pi, (n, 1))
        alpha_amp = rng.uniform(0.3, 1.7, (n, 1))  # alpha waxes and wanes from trial to trial
        alpha = alpha_amp * np.sqrt(2) * np.sin(2 * np.pi * self.subject_alpha[subjects, None] * self.times[None]
                                                + phase)  # [N, T]
        return np.concatenate([pink, alpha[:, None]], axis=1)

    def _background_topographies(self) -> np.ndarray:
        """``[B + 1, C]`` scaled so pink, alpha and sensor noise share the unit background variance."""
        pink_share = 1.0 - SENSOR_NOISE - ALPHA_SHARE
        return np.concatenate([self.background_topographies * np.sqrt(pink_share / N_BACKGROUND_SOURCES),
                               self.alpha_topography[None] * np.sqrt(ALPHA_SHARE)])

    def background(self, subjects: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Background EEG ``float32 [N, C, T]`` with about unit variance per channel."""
        return self.simulate(None, None, subjects, 0.0, rng)

    def simulate(self, features: np.ndarray | None, labels: np.ndarray | None, subjects: np.ndarray, snr: float,
                 rng: np.random.Generator) -> np.ndarray:
        """Single-trial EEG ``float32 [N, C, T]``: ``snr`` x evoked + background.

        All sources go to the scalp in one product (the slow part is memory traffic over [N, 128, 512]).
        """
        sources = [self.background_sources(subjects, rng)]
        topographies = [self._background_topographies()]
        if snr > 0:
            sources.append(snr * self.evoked_sources(features, labels, subjects, rng))
            topographies.append(self.topographies)
        # torch for the big [N, 128, 512] part: a broadcast matmul straight into [N, C, T] and a fast
        # seeded normal generator (numpy's are several times slower here); still a function of `rng`.
        topo = torch.from_numpy(np.concatenate(topographies).T.astype(np.float32))  # [C, S]
        src = torch.from_numpy(np.concatenate(sources, axis=1).astype(np.float32))  # [N, S, T]
        scalp = torch.matmul(topo, src)  # [N, C, T]
        gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        scalp.add_(torch.randn(scalp.shape, generator=gen), alpha=float(np.sqrt(SENSOR_NOISE)))
        return scalp.numpy()


# ----------------------------------------------------------------------------- splits
def split_images(labels: np.ndarray, seed: int, val_fraction: float = 0.1, test_fraction: float = 0.15) -> dict:
    """Stratified split of image indices; a function of ``seed`` only (and the labels)."""
    rng = np.random.default_rng([seed, 4])
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.where(labels == c)[0])
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        out["test"] += idx[:n_test].tolist()
        out["val"] += idx[n_test:n_test + n_val].tolist()
        out["train"] += idx[n_test + n_val:].tolist()
    return {k: sorted(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- building
def _params(seed, n_subjects, snr, n_corpus_windows, resolution, trials_per_image, n_images,
            center_subjects=False) -> dict:
    params = dict(seed=int(seed), n_subjects=int(n_subjects), snr=float(snr), n_corpus_windows=int(n_corpus_windows),
                  resolution=int(resolution), trials_per_image=int(trials_per_image),
                  n_images=None if n_images is None else int(n_images), generator_version=GENERATOR_VERSION)
    if center_subjects:  # only when set, so benchmarks built before the option still match their parameters
        params["center_subjects"] = True
    return params


def build_benchmark(output: str | os.PathLike, seed: int = 0, n_subjects: int = 6, snr: float = 0.05,
                    n_corpus_windows: int = 1000, resolution: int = 32, trials_per_image: int = 1,
                    n_images: int | None = None, overwrite: bool = False, center_subjects: bool = False) -> Path:
    """Simulate the benchmark into ``output`` (atomically) and return its path.

    ``n_images`` limits the benchmark to a stratified subset of the 1,797 digits (tests); each image is
    shown ``trials_per_image`` times, each time to a random subject. ``center_subjects``: every trial (train, val
    and test) has its subject's mean train trial subtracted
    (:func:`~dreamdiffusion.data.array_transforms.center_by_subject`; the unlabeled corpus is left as simulated).
    If ``output`` already holds a benchmark built with the same parameters it is reused; a different one needs
    ``overwrite=True``.
    """
    output = Path(output)
    params = _params(seed, n_subjects, snr, n_corpus_windows, resolution, trials_per_image, n_images, center_subjects)
    if n_subjects < 1 or trials_per_image < 1 or n_corpus_windows < 0 or snr < 0 or resolution < 8:
        raise DataError(f"invalid benchmark parameters {params}", output)
    if _reusable(output, params, overwrite):
        logger.info("reusing the benchmark in %s", output)
        return output

    images, labels = load_digit_images(resolution)
    features = image_features(images)
    if n_images is not None and n_images < len(images):
        keep = np.sort(np.random.default_rng([seed, 5]).permutation(len(images))[:n_images])
        images, labels, features = images[keep], labels[keep], features[keep]
    splits = split_images(labels, seed)
    brain = SimulatedBrain(seed, n_subjects, n_features=features.shape[1])

    rng = np.random.default_rng([seed, 6])
    image_index = np.repeat(np.arange(len(images)), trials_per_image)
    subject = rng.integers(0, n_subjects, len(image_index))

    # The EEG and the corpus windows, float32 (the images and JSON files are a few MB). The EEG is written through a
    # memory map, which on a full disk dies by SIGBUS instead of raising, so the space is checked first.
    window_bytes = N_CHANS * N_TIMES * 4
    require_free_space(output.absolute().parent, (len(image_index) + n_corpus_windows) * window_bytes + 2**26,
                       "the benchmark")
    # _reusable has refused a folder this call may not replace, hence overwrite=True here
    with staged_folder(output, overwrite=True) as tmp:
        eeg = np.lib.format.open_memmap(tmp / "eeg.npy", mode="w+", dtype=np.float32,
                                        shape=(len(image_index), N_CHANS, N_TIMES))
        for start in range(0, len(image_index), CHUNK):
            sl = slice(start, start + CHUNK)
            idx = image_index[sl]
            eeg[sl] = brain.simulate(features[idx], labels[idx], subject[sl], snr, rng)
        if center_subjects:
            train_rows = np.where(np.isin(image_index, splits["train"]))[0]
            center_by_subject(eeg, subject, subject_means(eeg, subject, train_rows))
        eeg.flush()
        del eeg
        np.save(tmp / "images.npy", images)
        np.save(tmp / "labels.npy", labels)
        (tmp / "trials.json").write_text(json.dumps({"image_index": image_index.tolist(),
                                                     "subject": subject.tolist()}))
        (tmp / "splits.json").write_text(json.dumps(splits))
        _write_corpus(tmp / "corpus", brain, features, labels, splits["train"], n_corpus_windows, n_subjects,
                      snr, np.random.default_rng([seed, 7]))
        description = _description(params, brain, images, labels, image_index, splits)
        (tmp / "benchmark.json").write_text(json.dumps(description, indent=1))
    return output


def _reusable(output: Path, params: dict, overwrite: bool) -> bool:
    """True when ``output`` already holds a benchmark of ``params``; refuses (``DataError``) a folder that holds
    something else, unless ``overwrite``."""
    if (output / "benchmark.json").is_file() and not overwrite:
        try:
            description = json.loads((output / "benchmark.json").read_text())
            existing = description.get("parameters")
        except (OSError, ValueError, AttributeError):
            description, existing = None, None
        if existing == params:
            missing = _missing_files(output, description)
            if not missing:
                return True
            # Ours, same parameters, a file gone (benchmarks/seeds.sh deletes the 2 GB of EEG after a run): the
            # simulation is deterministic in the parameters, so rebuilding gives back the same folder.
            logger.info("rebuilding the benchmark in %s: %s missing", output, ", ".join(missing))
            return False
        raise DataError("folder holds a benchmark built with other parameters (pass overwrite=True / --overwrite)",
                        output)
    if output.exists() and not overwrite and (not output.is_dir() or any(output.iterdir())):
        raise DataError("output folder exists and is not empty (pass overwrite=True / --overwrite)", output)
    return False


def _missing_files(output: Path, description: dict) -> list[str]:
    """The files that a benchmark's ``description`` (its ``benchmark.json``) and its corpus manifest name that are
    not in ``output``."""
    try:
        names = [description[k] for k in ("eeg", "images", "labels", "trials", "split_file")]
        corpus = output / description["corpus"]
        names += [f"{corpus.name}/{shard['file']}" for shard in read_manifest(corpus)["shards"]]
    except (DataError, KeyError, TypeError):
        return ["a readable benchmark.json and corpus manifest"]
    return [name for name in names if not (output / name).is_file()]


def _description(params: dict, brain: SimulatedBrain, images, labels, image_index, splits) -> dict:
    """``benchmark.json``: what was simulated, with what, and where each part lies."""
    n_classes = int(labels.max() + 1)
    return {
        "format": FORMAT_NAME, "version": 1, "parameters": params,
        "n_chans": N_CHANS, "n_times": N_TIMES, "sfreq": SFREQ, "t_start": T_START, "units": "z-scored",
        "montage": MONTAGE, "ch_names": brain.ch_names,
        "components": [dict(name=c[0], latency_s=c[1], width_s=c[2], polarity=c[3]) for c in COMPONENTS],
        "n_sources": N_SOURCES, "n_images": int(len(images)), "n_trials": int(len(image_index)),
        "n_classes": n_classes, "class_names": [str(c) for c in range(n_classes)],
        "splits": {k: len(v) for k, v in splits.items()},
        "images": "images.npy", "labels": "labels.npy", "eeg": "eeg.npy", "trials": "trials.json",
        "split_file": "splits.json", "corpus": "corpus",
        "source": "images: scikit-learn load_digits (UCI optical recognition of handwritten digits); "
                  "EEG: simulated by dreamdiffusion.data.synthetic",
    }


def _write_corpus(folder: Path, brain: SimulatedBrain, features, labels, train_images, n_windows: int,
                  n_subjects: int, snr: float, rng: np.random.Generator) -> None:
    """Unlabeled windows: responses to random *train* images (never val/test), recorded per subject."""
    writer = CorpusWriter(folder, N_CHANS, N_TIMES, SFREQ, extra={"generator": FORMAT_NAME})
    try:
        train_images = np.asarray(train_images)
        per_subject = np.bincount(rng.integers(0, n_subjects, n_windows), minlength=n_subjects)
        for s, count in enumerate(per_subject):
            for start in range(0, int(count), CHUNK):
                n = min(CHUNK, int(count) - start)
                idx = rng.choice(train_images, n)
                windows = brain.simulate(features[idx], labels[idx], np.full(n, s), snr, rng)
                writer.add(windows, source=f"synthetic-subject-{s:02d}", subject=f"sub-{s:02d}",
                           sfreq_original=SFREQ, n_chans_original=N_CHANS)
        writer.close()
    except BaseException:
        writer.abort()
        raise


# ----------------------------------------------------------------------------- reading
def read_benchmark(root: str | os.PathLike) -> dict:
    path = Path(root) / "benchmark.json"
    if not path.is_file():
        raise DataError("not a synthetic benchmark folder (no benchmark.json; build one with "
                        "dreamdiffusion.data.synthetic.build_benchmark, or use the benchmark/ folder of a "
                        "`dreamdiffusion demo` run)", root)
    try:
        desc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"benchmark.json is unreadable: {exc}", path) from None
    if desc.get("format") != FORMAT_NAME:
        raise DataError("benchmark.json is not a dreamdiffusion synthetic benchmark", path)
    return desc


class SyntheticPairs(torch.utils.data.Dataset):
    """EEG-image pairs of a built benchmark, items as the paired datasets give them.

    ``split`` is ``train``, ``val``, ``test`` or ``all``; ``subject`` optionally keeps one subject's trials.
    Items: ``{"eeg": float32 [128, 512], "image": PIL RGB, "label": int, "subject": int,
    "image_name": "digit-0042.png", "image_index": int}``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", subject: int | None = None):
        self.root = Path(root)
        self.description = read_benchmark(root)
        if split not in ("train", "val", "test", "all"):
            raise DataError(f"split must be train, val, test or all, got {split!r}", self.root)
        self.split = split
        try:
            self._eeg = np.load(self.root / self.description["eeg"], mmap_mode="r", allow_pickle=False)
            self.images = np.load(self.root / self.description["images"], allow_pickle=False)
            self.labels = np.load(self.root / self.description["labels"], allow_pickle=False)
            trials = json.loads((self.root / self.description["trials"]).read_text())
            splits = json.loads((self.root / self.description["split_file"]).read_text())
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"benchmark files are missing or unreadable ({exc}); rebuild it", self.root) from None
        self.trial_image = np.asarray(trials["image_index"], dtype=np.int64)
        self.trial_subject = np.asarray(trials["subject"], dtype=np.int64)
        if self._eeg.shape[0] != len(self.trial_image):
            raise DataError("eeg.npy and trials.json disagree on the number of trials; rebuild it", self.root)
        keep = np.ones(len(self.trial_image), bool)
        if split != "all":
            keep &= np.isin(self.trial_image, np.asarray(splits[split], dtype=np.int64))
        if subject is not None:
            keep &= self.trial_subject == int(subject)
        self.indices = np.where(keep)[0]
        self.class_names = self.description["class_names"]
        self.sfreq = self.description["sfreq"]
        self.ch_names = self.description["ch_names"]
        self.spec = benchmark_input_spec(self.description)

    def __len__(self) -> int:
        return len(self.indices)

    def image_keys(self) -> list[tuple[str, int]]:
        """``(image_name, label)`` of every item, without reading the EEG (used to draw subsets of images)."""
        images = self.trial_image[self.indices]
        return [(f"digit-{int(i):04d}.png", int(self.labels[i])) for i in images]

    def image(self, image_index: int):
        return Image.fromarray(self.images[image_index])  # uint8 [R, R, 3] -> RGB

    def eeg(self, i: int) -> torch.Tensor:
        """Item ``i``'s EEG ``float32 [128, 512]`` alone (no image read)."""
        return torch.from_numpy(np.array(self._eeg[int(self.indices[i])], dtype=np.float32))

    def __getitem__(self, i: int) -> dict:
        t = int(self.indices[i])
        img = int(self.trial_image[t])
        return {"eeg": self.eeg(i), "image": self.image(img),
                "label": int(self.labels[img]), "subject": int(self.trial_subject[t]),
                "image_name": f"digit-{img:04d}.png", "image_index": img}


def benchmark_input_spec(description: dict) -> InputSpec:
    """How a recording becomes the input of a model trained on the benchmark (its pipeline's ``preprocessing.json``).

    The simulated cap is MNE's BioSemi-128, so a recording's channels are interpolated onto those 128 positions by
    name (``channel_mapping="montage"``; a headset's 10-05 names are placed through the 10-05 template), not tiled
    in file order, which would put a 14-channel headset's frontal channels where the model expects occipital ones."""
    return InputSpec(n_chans=int(description["n_chans"]), n_times=int(description["n_times"]),
                     sfreq=float(description["sfreq"]), channel_mapping="montage",
                     montage=str(description.get("montage", MONTAGE)), target_channels=list(description["ch_names"]))


def eeg_features(eeg: np.ndarray, n_bins: int = 16) -> np.ndarray:
    """Deprecated alias of :func:`dreamdiffusion.data.transforms.binned_means` (moved there; kept one release)."""
    warnings.warn("dreamdiffusion.data.synthetic.eeg_features moved to dreamdiffusion.data.transforms.binned_means",
                  DeprecationWarning, stacklevel=2)
    return binned_means(eeg, n_bins)


def linear_baseline(root: str | os.PathLike, split: str = "test") -> float:
    """Accuracy on ``split`` of a ridge classifier on the train EEG (16 time bins per channel), its penalty chosen on
    train by leave-one-image-out (:class:`~dreamdiffusion.core.ridge.RidgeSearch`, as the evaluation's baselines)."""
    train, other = SyntheticPairs(root, "train"), SyntheticPairs(root, split)

    def xy(ds):
        trials = np.sort(ds.indices)
        images = ds.trial_image[trials]
        return binned_means(np.asarray(ds._eeg[trials], dtype=np.float32), 16), ds.labels[images].astype(str), images

    xtr, ytr, images = xy(train)
    xte, yte, _ = xy(other)
    clf = RidgeSearch(xtr, images).fit(ytr, classify=True)
    return float(np.mean(clf.predict(xte) == yte))


__all__ = ["build_benchmark", "SyntheticPairs", "SimulatedBrain", "load_digit_images", "split_images",
           "read_benchmark", "linear_baseline", "eeg_features", "montage_positions", "benchmark_input_spec"]
