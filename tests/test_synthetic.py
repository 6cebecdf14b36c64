"""The built-in benchmark: determinism, splits by image, shapes, and that the EEG carries the
class but not trivially."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dreamdiffusion.core.errors import DataError, DiskSpaceError
from dreamdiffusion.data import synthetic
from dreamdiffusion.data.corpus import CorpusDataset, read_manifest

SMALL = dict(n_subjects=3, n_corpus_windows=40, n_images=200)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return synthetic.build_benchmark(tmp_path_factory.mktemp("b") / "bench", seed=0, **SMALL)


def test_layout_shapes_and_items(bench):
    desc = json.loads((bench / "benchmark.json").read_text())
    assert desc["n_chans"] == 128 and desc["n_times"] == 512 and len(desc["ch_names"]) == 128
    assert desc["sfreq"] == pytest.approx(512 / 0.44)
    eeg = np.load(bench / "eeg.npy", mmap_mode="r")
    assert eeg.dtype == np.float32 and eeg.shape == (200, 128, 512)
    assert np.isfinite(eeg).all()
    # background is about unit variance per channel (z-scored units)
    assert 0.7 < float(np.asarray(eeg).std()) < 1.4
    images = np.load(bench / "images.npy")
    assert images.dtype == np.uint8 and images.shape == (200, 32, 32, 3)
    ds = synthetic.SyntheticPairs(bench, "train")
    item = ds[0]
    assert set(item) >= {"eeg", "image", "label", "subject", "image_name"}
    assert item["eeg"].dtype == torch.float32 and item["eeg"].shape == (128, 512)
    assert isinstance(item["image"], Image.Image) and item["image"].mode == "RGB" and item["image"].size == (32, 32)
    assert 0 <= item["label"] < 10 and 0 <= item["subject"] < 3
    # the item's image is the digit the trial showed, its label the digit's class
    idx = item["image_index"]
    assert np.array_equal(np.asarray(item["image"]), images[idx])
    assert item["label"] == int(np.load(bench / "labels.npy")[idx])


def test_splits_by_image_without_overlap(bench):
    splits = json.loads((bench / "splits.json").read_text())
    sets = {k: set(v) for k, v in splits.items()}
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    assert sets["train"] | sets["val"] | sets["test"] == set(range(200))
    seen = {s: {synthetic.SyntheticPairs(bench, s)[i]["image_index"] for i in range(len(synthetic.SyntheticPairs(bench, s)))}
            for s in ("train", "test")}
    assert seen["test"] <= sets["test"] and seen["train"] <= sets["train"]
    assert len(synthetic.SyntheticPairs(bench, "all")) == 200


def test_corpus_is_valid_and_uses_train_images_only(bench):
    manifest = read_manifest(bench / "corpus")
    assert manifest["n_windows"] == 40 and manifest["n_chans"] == 128 and manifest["n_times"] == 512
    ds = CorpusDataset(bench / "corpus", split="all")
    assert len(ds) == 40 and ds[0].shape == (128, 512) and ds[0].dtype == torch.float32


def test_deterministic_for_a_seed_and_seed_changes_everything(tmp_path, bench):
    again = synthetic.build_benchmark(tmp_path / "again", seed=0, **SMALL)
    other = synthetic.build_benchmark(tmp_path / "other", seed=1, **SMALL)
    a, b, c = (np.load(p / "eeg.npy") for p in (bench, again, other))
    assert np.array_equal(a, b)
    assert (bench / "splits.json").read_text() == (again / "splits.json").read_text()
    assert (bench / "trials.json").read_text() == (again / "trials.json").read_text()
    assert np.array_equal(np.load(bench / "corpus" / "shard-00000.npy"), np.load(again / "corpus" / "shard-00000.npy"))
    assert not np.allclose(a, c)
    assert (bench / "splits.json").read_text() != (other / "splits.json").read_text()
    # a different seed is a different brain, not only different noise
    b0, b1 = synthetic.SimulatedBrain(0, 3), synthetic.SimulatedBrain(1, 3)
    assert not np.allclose(b0.topographies, b1.topographies)
    assert not np.allclose(b0.subject_gain, b1.subject_gain)


def test_reuse_and_refusal(tmp_path, bench):
    assert synthetic.build_benchmark(bench, seed=0, **SMALL) == bench  # same parameters: reused
    with pytest.raises(DataError, match="other parameters"):
        synthetic.build_benchmark(bench, seed=2, **SMALL)
    with pytest.raises(DataError, match="benchmark.json"):
        synthetic.SyntheticPairs(tmp_path, "train")
    with pytest.raises(DataError, match="split"):
        synthetic.SyntheticPairs(bench, "holdout")


def test_a_benchmark_with_files_missing_is_rebuilt_the_same(tmp_path, bench):
    """benchmarks/seeds.sh deletes the EEG after each run; the demo's next run at that seed must rebuild it, not
    reuse the folder and fail on the missing file."""
    copy = synthetic.build_benchmark(tmp_path / "copy", seed=0, **SMALL)
    (copy / "eeg.npy").unlink()
    (copy / "corpus" / "shard-00000.npy").unlink()
    assert synthetic.build_benchmark(copy, seed=0, **SMALL) == copy
    assert np.array_equal(np.load(copy / "eeg.npy"), np.load(bench / "eeg.npy"))
    assert np.array_equal(np.load(copy / "corpus" / "shard-00000.npy"), np.load(bench / "corpus" / "shard-00000.npy"))
    assert len(synthetic.SyntheticPairs(copy, "train")) == len(synthetic.SyntheticPairs(bench, "train"))


def test_a_benchmark_that_does_not_fit_on_the_disk_is_refused_before_writing(tmp_path, monkeypatch):
    """The EEG is written through a memory map, which on a full disk kills the process (SIGBUS): the space is
    checked first, and nothing is left behind."""
    from collections import namedtuple

    from dreamdiffusion.core import files
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda path: usage(2**40, 2**40 - 2**20, 2**20))
    with pytest.raises(DiskSpaceError) as info:
        synthetic.build_benchmark(tmp_path / "full" / "bench", seed=0, **SMALL)
    message = str(info.value)
    assert "the benchmark needs about" in message and "1 MB" in message and str(tmp_path / "full") in message
    assert not (tmp_path / "full" / "bench").exists() and not list((tmp_path / "full").glob("*"))
    monkeypatch.undo()  # (files.shutil is the shutil module: the patch was global)
    assert synthetic.build_benchmark(tmp_path / "full" / "bench", seed=0, **SMALL).is_dir()


def test_evoked_component_latencies_and_topography():
    """The evoked response peaks where a visual ERP does and is largest over posterior channels."""
    brain = synthetic.SimulatedBrain(0, 2)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((64, 64)) / 8
    evoked = brain.evoked(feats, np.arange(64) % 10, np.zeros(64, int), rng)  # [N, C, T]
    gfp = np.sqrt((evoked.mean(0) ** 2).mean(0))  # global field power of the average
    peak_s = brain.times[np.argmax(gfp)]
    assert 0.08 <= peak_s <= 0.40
    assert gfp[brain.times < 0.05].max() < 0.2 * gfp.max()  # nothing before the first component
    _, xyz = synthetic.montage_positions()
    power = (evoked ** 2).mean((0, 2))
    assert power[xyz[:, 1] < 0].mean() > power[xyz[:, 1] > 0.3].mean()


def test_eeg_is_class_informative_but_not_trivially(tmp_path):
    """A ridge classifier on binned train EEG is far above chance and far below perfect on test."""
    root = synthetic.build_benchmark(tmp_path / "full", seed=0, n_subjects=4, n_corpus_windows=0, n_images=900)
    acc = synthetic.linear_baseline(root, "test")
    assert 0.3 < acc < 0.9, acc
    # the same images with no evoked signal: chance
    flat = synthetic.build_benchmark(tmp_path / "flat", seed=0, n_subjects=4, n_corpus_windows=0, n_images=900,
                                     snr=0.0)
    assert synthetic.linear_baseline(flat, "test") < 0.2


def test_a_benchmark_model_reads_recordings_by_the_caps_positions(bench):
    """What a pipeline trained on the benchmark records as its input: the 128 BioSemi positions the EEG was simulated
    on, mapped by position (a headset's channels land where they sit on the head), at the benchmark's rate."""
    spec = synthetic.SyntheticPairs(bench, "train").spec
    desc = json.loads((bench / "benchmark.json").read_text())
    assert spec.channel_mapping == "montage" and spec.montage == "biosemi128"
    assert spec.target_channels == desc["ch_names"] and spec.n_chans == 128 and spec.sfreq == desc["sfreq"]
    assert spec.n_times == desc["n_times"]

def test_registered_as_paired_dataset(bench):
    pairs = pytest.importorskip("dreamdiffusion.data.pairs")
    ds = pairs.open_paired_dataset("synthetic", "val", root=bench)
    assert len(ds) == len(synthetic.SyntheticPairs(bench, "val")) and ds[0]["eeg"].shape == (128, 512)


def test_center_subjects_removes_each_subjects_train_mean_and_keeps_the_rest(tmp_path, bench):
    """Train trials of every subject average to zero; each trial differs from the simulated one by its subject's
    mean train trial only (val and test trials never enter the means); the option is recorded and the corpus kept."""
    root = synthetic.build_benchmark(tmp_path / "c", seed=0, center_subjects=True, **SMALL)
    desc = json.loads((root / "benchmark.json").read_text())
    assert desc["parameters"]["center_subjects"] is True
    assert "center_subjects" not in json.loads((bench / "benchmark.json").read_text())["parameters"]
    raw, cen = np.load(bench / "eeg.npy"), np.load(root / "eeg.npy")
    trials = json.loads((bench / "trials.json").read_text())
    subject, image = np.array(trials["subject"]), np.array(trials["image_index"])
    train = np.isin(image, json.loads((bench / "splits.json").read_text())["train"])
    for k in np.unique(subject):
        rows = subject == k
        mean = raw[rows & train].astype(np.float64).mean(0)
        np.testing.assert_allclose(cen[rows], raw[rows] - mean.astype(np.float32), atol=1e-5)
        assert np.abs(cen[rows & train].mean(0)).max() < 1e-5
        assert np.abs(cen[rows & ~train].mean(0)).max() > 1e-3  # held-out trials: not centred on themselves
    assert np.array_equal(np.load(next((root / "corpus").glob("*.npy"))),
                          np.load(next((bench / "corpus").glob("*.npy"))))


def test_a_failed_build_leaves_nothing_and_keeps_the_previous_benchmark(tmp_path, monkeypatch):
    out = tmp_path / "bench"

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic, "_write_corpus", broken)
    with pytest.raises(RuntimeError):
        synthetic.build_benchmark(out, seed=0, n_subjects=2, n_corpus_windows=0, n_images=60)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a half-written sibling
    monkeypatch.undo()
    built = synthetic.build_benchmark(out, seed=0, n_subjects=2, n_corpus_windows=0, n_images=60)
    before = (built / "benchmark.json").read_text()
    monkeypatch.setattr(synthetic, "_write_corpus", broken)
    with pytest.raises(RuntimeError):
        synthetic.build_benchmark(out, seed=1, n_subjects=2, n_corpus_windows=0, n_images=60, overwrite=True)
    assert (out / "benchmark.json").read_text() == before and [p.name for p in tmp_path.iterdir()] == ["bench"]
