"""Paired EEG-image datasets on fixtures written in the exact file layouts."""

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d

from dreamdiffusion.core.errors import ConfigError, DataError, DreamDiffusionError
from dreamdiffusion.data.array_transforms import normalize_windows
from dreamdiffusion.data.images import ImageTransform, PairCollator
from dreamdiffusion.data.pairs import (
    BRAIN2IMAGE_CLASSES,
    EEGCVPR40,
    PAIRED_DATASETS,
    FolderPairs,
    ThingsEEG2,
    open_paired_dataset,
    open_paired_dataset_from_cli,
    paired_dataset_options,
    register_paired_dataset,
)
from dreamdiffusion.data.transforms import InputSpec, standardize_raw
from pairs_fixtures import THINGS_CHANNELS, WNIDS, write_cvpr40, write_jpeg, write_spkit_fif, write_things

pytestmark = pytest.mark.usefixtures("fresh_pairs_cache")


def _paper_eeg(eeg: torch.Tensor) -> np.ndarray:
    """The reference preprocessing, written with scipy as the reference code does it."""
    x = eeg.numpy()[:, 20:460]
    return interp1d(np.linspace(0, 1, x.shape[1]), x)(np.linspace(0, 1, 512))


# ---------------------------------------------------------------------------------------------- EEGCVPR40

def test_cvpr40_subject_filter_split_and_length_filter(cvpr):
    s4 = cvpr.subject_list(4)
    assert len(s4) == 10
    for split, idx in cvpr.single.items():
        ds = EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split=split, subject=4)
        expect = [s4[k] for k in idx if 450 <= cvpr.trials[s4[k]]["eeg"].shape[1] <= 600]
        assert ds.trial_indices == expect
        assert len(ds) == len(expect)
        assert ds.labels == [cvpr.trials[i]["label"] for i in expect]
    # Concretely: train [0..5] of subject 4 has lengths 500, 450, 600, 449, 601, 520 -> 4 kept, both
    # boundaries inclusive.
    train = EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="train")
    assert len(train) == 4 and train.n_dropped == 2
    assert [cvpr.trials[i]["eeg"].shape[1] for i in train.trial_indices] == [500, 450, 600, 520]


def test_cvpr40_items_match_reference_crop_and_stretch(cvpr):
    ds = EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="train")
    for i in range(len(ds)):
        item = ds[i]
        trial = cvpr.trials[ds.trial_indices[i]]
        assert item["eeg"].shape == (128, 512) and item["eeg"].dtype == torch.float32
        np.testing.assert_allclose(item["eeg"].numpy(), _paper_eeg(trial["eeg"]), rtol=1e-5, atol=1e-5)
        assert item["label"] == trial["label"] and item["subject"] == 4 and item["index"] == i
        assert item["image_name"] == cvpr.images[trial["image"]]
        assert item["image"].mode == "RGB" and item["image"].size == (40, 30)
    # A 450-sample trial gives 430 samples after the crop; they are stretched to 512 the same way.
    short = ds[1]
    assert cvpr.trials[ds.trial_indices[1]]["eeg"].shape[1] == 450
    np.testing.assert_allclose(short["eeg"][:, 0], cvpr.trials[ds.trial_indices[1]]["eeg"][:, 20], atol=1e-6)
    np.testing.assert_allclose(short["eeg"][:, -1], cvpr.trials[ds.trial_indices[1]]["eeg"][:, 449], atol=1e-6)


def test_cvpr40_all_subjects_and_second_split(cvpr):
    ds = EEGCVPR40(cvpr.eeg_path, cvpr.all_path, cvpr.image_dir, split="train", subject=0)
    lengths = [cvpr.trials[i]["eeg"].shape[1] for i in range(12)]
    assert ds.trial_indices == [i for i in range(12) if 450 <= lengths[i] <= 600]
    assert {ds[i]["subject"] for i in range(len(ds))} == {1, 4}
    other = EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="test", split_index=1)
    s4 = cvpr.subject_list(4)
    assert other.trial_indices == [s4[1], s4[2]]


def test_cvpr40_split_indices_out_of_range_name_the_split_file(cvpr):
    # The _all split indexes 16 trials; subject 4 has only 10.
    with pytest.raises(DataError, match="out of range") as e:
        EEGCVPR40(cvpr.eeg_path, cvpr.all_path, cvpr.image_dir, split="val", subject=4)
    assert e.value.path == str(cvpr.all_path)
    with pytest.raises(DataError, match="split index 5") as e:
        EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split_index=5)
    assert e.value.path == str(cvpr.single_path)
    with pytest.raises(DataError, match="no trials of subject 3"):
        EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, subject=3)


def test_cvpr40_missing_and_corrupt_images_are_errors_not_noise(cvpr):
    missing = cvpr.image_dir / "n02690373" / "n02690373_100.JPEG"
    missing.unlink()
    with pytest.raises(DataError, match="missing") as e:
        EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="train")
    assert e.value.path == str(missing)
    # Even without the up-front check, reading the item fails; it never substitutes an image.
    ds = EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="train", check_images=False)
    with pytest.raises(DataError, match="not found"):
        ds[0]
    missing.write_text("not a jpeg")
    with pytest.raises(DataError, match="not a readable image") as e:
        ds[0]
    assert e.value.path == str(missing)
    with pytest.raises(DataError, match="image folder not found"):
        EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.root / "nowhere")


def test_cvpr40_names_and_brain2image_classes(cvpr):
    ds = EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="train")
    assert ds.wnids == WNIDS
    assert ds.class_names == ["airliner", "jack-o'-lantern", "giant panda", "canoe"]
    paths = ds.image_paths(list(BRAIN2IMAGE_CLASSES))
    assert set(paths) == set(BRAIN2IMAGE_CLASSES)
    # train keeps labels 0, 1, 2, 1 -> one airliner, two jack-o'-lantern images, one panda.
    assert [len(paths[w]) for w in BRAIN2IMAGE_CLASSES] == [1, 2, 1]
    assert all(p.is_file() and p.parent.name == w for w, ps in paths.items() for p in ps)
    assert ds.indices_of_classes(["n03590841"]) == [1, 3]
    # The preprocessing a raw recording would need to match: 5-95 Hz, 440 ms -> 512 samples, no z-score.
    assert (ds.spec.l_freq, ds.spec.h_freq, ds.spec.n_chans, ds.spec.n_times) == (5.0, 95.0, 128, 512)
    assert ds.spec.sfreq == pytest.approx(512 / 0.44) and ds.spec.normalize == "none"


def test_cvpr40_nan_trial_is_refused_at_read(tmp_path):
    c = write_cvpr40(tmp_path / "c")
    data = torch.load(c.eeg_path, weights_only=True)
    data["dataset"][0]["eeg"][3, 100] = float("nan")
    torch.save(data, c.eeg_path)
    ds = EEGCVPR40(c.eeg_path, c.single_path, c.image_dir, split="train")
    with pytest.raises(DataError, match="NaN") as e:
        ds[0]
    assert e.value.path == str(c.eeg_path)
    assert ds[1]["eeg"].isfinite().all()


def test_cvpr40_cache_reloads_a_changed_file(cvpr):
    a = EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="train")
    b = EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="test")
    assert a._trials[0] is b._trials[0]  # one load shared by the splits of a run
    torch.save({"splits": [{"train": [0], "val": [], "test": [1]}]}, cvpr.single_path)
    assert len(EEGCVPR40(cvpr.eeg_path, cvpr.single_path, cvpr.image_dir, split="train")) == 1


# ---------------------------------------------------------------------------------------------- THINGS-EEG2

def test_things_splits_partition_training_images(tmp_path):
    t = write_things(tmp_path / "things")
    train = ThingsEEG2(t.root, "train")
    val = ThingsEEG2(t.root, "val")
    test = ThingsEEG2(t.root, "test")
    assert sorted(train.conditions + val.conditions) == list(range(12))
    assert not set(train.conditions) & set(val.conditions)
    assert len(val) == 1  # round(0.1 * 12)
    # Deterministic for a seed; another seed moves the val image.
    assert ThingsEEG2(t.root, "val").conditions == val.conditions
    assert any(ThingsEEG2(t.root, "val", seed=s).conditions != val.conditions for s in range(1, 6))
    assert len(test) == 5 and test.n_way == 5
    assert test.concepts == ["goat", "fork", "easel", "dog", "canoe"]
    assert test.labels == [0, 1, 2, 3, 4]
    assert train.concepts == ["aardvark", "banana", "canoe"]
    assert train.labels == [c // 4 for c in train.conditions]
    item = train[0]
    cond = train.conditions[0]
    folder, fname = t.train_images[cond]
    assert item["image_name"] == fname[:-4] and item["concept"] == folder.split("_", 1)[1]
    assert item["label"] == cond // 4 and item["subject"] == 1


def test_things_eeg_is_averaged_mapped_and_stretched(tmp_path):
    t = write_things(tmp_path / "things")
    spec = InputSpec(normalize="none")
    ds = ThingsEEG2(t.root, "test", spec=spec)
    x = ds[2]["eeg"]
    assert x.shape == (128, 512) and x.dtype == torch.float32
    mean = t.test[2].astype(np.float64).mean(axis=0)  # [17, 100]
    tiled = mean[np.arange(128) % 17]
    expected = interp1d(np.linspace(0, 1, 100), tiled)(np.linspace(0, 1, 512))
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-5)
    # Single repetitions, a time window and a smaller model input.
    ds1 = ThingsEEG2(t.root, "test", spec=spec, average_repetitions=False, n_chans=20, n_times=64,
                     time_window=(0.0, 0.5))
    assert len(ds1) == 5 * 6
    keep = (t.times >= 0) & (t.times <= 0.5)
    rep = t.test[1, 3][:, keep].astype(np.float64)
    expected = interp1d(np.linspace(0, 1, rep.shape[1]), rep[np.arange(20) % 17])(np.linspace(0, 1, 64))
    np.testing.assert_allclose(ds1[1 * 6 + 3]["eeg"].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert ds1[1 * 6 + 3]["label"] == 1
    # The effective rate of the stretch: 100 samples of 10 ms -> 512 samples over 1 s.
    assert ds.spec.sfreq == pytest.approx(512 / (100 * 0.01), rel=1e-3)
    # Default spec z-scores each channel of each trial.
    z = ThingsEEG2(t.root, "test")[0]["eeg"].numpy()
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=1), 1, atol=1e-3)


def test_things_montage_mapping_keeps_source_channels(tmp_path):
    t = write_things(tmp_path / "things")
    targets = ["Oz", "Pz", "O1", "Cz"]
    ds = ThingsEEG2(t.root, "test", spec=InputSpec(n_chans=4, normalize="none", channel_mapping="montage",
                                                 target_channels=targets), n_times=100)
    x = ds[0]["eeg"].numpy()
    mean = t.test[0].astype(np.float64).mean(axis=0)
    # Targets that are recorded channels come through (nearly) unchanged; Cz is interpolated.
    for row, name in enumerate(targets[:3]):
        np.testing.assert_allclose(x[row], mean[THINGS_CHANNELS.index(name)], atol=1e-3)
    assert np.isfinite(x[3]).all() and np.abs(x[3]).max() > 0


def test_things_image_metadata_order_and_errors(tmp_path):
    t = write_things(tmp_path / "things", metadata=True)
    ds = ThingsEEG2(t.root, "test", spec=InputSpec(normalize="none"))
    assert [p.name for p, _ in ds._images] == [f for _, f in t.test_images]
    with pytest.raises(DataError, match="sub-02"):
        ThingsEEG2(t.root, "train", subject=2)
    with pytest.raises(ConfigError):
        ThingsEEG2(t.root, "training")
    # EEG conditions and images must match in number.
    (t.root / "image_metadata.npy").unlink()
    next((t.root / "test_images").iterdir()).joinpath("extra.jpg").write_bytes(
        (t.root / "test_images").joinpath(*t.test_images[0]).read_bytes())
    with pytest.raises(DataError, match="do not belong together"):
        ThingsEEG2(t.root, "test")


# ---------------------------------------------------------------------------------------------- folder + CSV

@pytest.fixture(scope="module")
def folder(tmp_path_factory, spkit_recording):
    root = tmp_path_factory.mktemp("folder")
    write_spkit_fif(spkit_recording, root / "eeg" / "rec_eeg.fif")
    write_spkit_fif(spkit_recording, root / "eeg" / "rec2_eeg.fif")
    rows = ["eeg_file,onset,image,label,subject"]
    for i in range(14):
        img = f"images/img{i % 7}.jpg"
        write_jpeg(root / img, (20 * i, 100, 50), seed=i)
        rows.append(f"eeg/{'rec_eeg.fif' if i < 10 else 'rec2_eeg.fif'},{0.5 + i},{img},{'cat' if i % 2 else 'dog'},"
                    f"{'s1' if i < 10 else 's2'}")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    return root


KW = dict(val_fraction=0.3, test_fraction=0.3, seed=1)  # seed 1 puts images in all three splits


def test_folder_pairs_cut_real_eeg_at_onsets(folder, spkit_raw):
    spec = InputSpec()
    sets = {s: FolderPairs(folder, split=s, **KW) for s in ("train", "val", "test")}
    assert sum(len(d) for d in sets.values()) == 14
    # Split by image: all rows of one image share one split, and it is stable.
    image_split = {}
    for s, d in sets.items():
        for r in d.rows:
            assert image_split.setdefault(r["image"], s) == s
    assert [r["line"] for r in FolderPairs(folder, split="train", **KW).rows] == [r["line"] for r in sets["train"].rows]
    assert image_split["images/img0.jpg"] == "val" and image_split["images/img1.jpg"] == "train"
    ds = sets["train"]
    assert ds.class_names == ["cat", "dog"]
    assert all(lab == (1 if (r["line"] - 2) % 2 == 0 else 0) for lab, r in zip(ds.labels, ds.rows))
    # The epoch is the standardised recording from onset + 20 ms, z-scored.
    raw = spkit_raw.set_montage(None)
    full = standardize_raw(raw, spec)
    r = ds.rows[0]
    item = ds[0]
    start = int(round((r["onset"] + 0.02) * spec.sfreq))
    expected = normalize_windows(full[None, :, start:start + 512], "zscore")[0]
    assert item["eeg"].shape == (128, 512)
    np.testing.assert_allclose(item["eeg"].numpy(), expected, atol=1e-4)
    # channel rows repeat the 14 recorded channels (the paper's mapping)
    assert torch.equal(item["eeg"][0], item["eeg"][14])
    assert item["image"].mode == "RGB" and item["image_name"] == r["image"].split("/")[-1][:-4]
    assert FolderPairs(folder, split="train", subject="s2", **KW).rows[0]["eeg_file"] == "eeg/rec2_eeg.fif"


def test_folder_pairs_split_column_and_bad_csvs(folder, tmp_path):
    import shutil
    root = tmp_path / "f"
    shutil.copytree(folder, root)
    csv = root / "pairs.csv"
    csv.write_text("eeg_file,onset,image,split\neeg/rec_eeg.fif,1.0,images/img0.jpg,val\n"
                   "eeg/rec_eeg.fif,2.0,images/img1.jpg,train\n")
    assert len(FolderPairs(root, split="val")) == 1 and FolderPairs(root, split="val").labels == [-1]
    cases = {
        "image,onset\nimages/img0.jpg,1\n": "lacks column",
        "eeg_file,onset,image\neeg/rec_eeg.fif,abc,images/img0.jpg\n": "not a number",
        "eeg_file,onset,image\neeg/rec_eeg.fif,-1,images/img0.jpg\n": ">= 0",
        "eeg_file,onset,image\neeg/rec_eeg.fif,15.9,images/img0.jpg\n": "runs past",
        "eeg_file,onset,image,split\neeg/rec_eeg.fif,1,images/img0.jpg,holdout\n": "not one of",
        "eeg_file,onset,image\n": "no rows",
        "eeg_file,onset,image\neeg/rec_eeg.fif,1,images/img0.jpg,extra\n": "more values",
    }
    for text, msg in cases.items():
        csv.write_text(text)
        with pytest.raises(DataError, match=msg) as e:
            FolderPairs(root, split="train", val_fraction=0.0, test_fraction=0.0)
        assert e.value.path == str(csv)
    csv.write_bytes(b"eeg_file,image\n\xff\xfe,x\n")
    with pytest.raises(DataError, match="UTF-8"):
        FolderPairs(root)
    csv.write_text("eeg_file,onset,image\neeg/none.fif,1,images/img0.jpg\n")
    with pytest.raises(DreamDiffusionError) as e:
        FolderPairs(root, val_fraction=0.0, test_fraction=0.0)
    assert e.value.path.endswith("none.fif")


# ---------------------------------------------------------------------------------------------- registry

def test_registry_and_cli_options(cvpr, tmp_path):
    assert {"eegcvpr40", "things-eeg2", "folder"} <= set(PAIRED_DATASETS)
    opts = paired_dataset_options("eegcvpr40", eeg=cvpr.eeg_path, splits=cvpr.single_path, images=cvpr.image_dir,
                                  subject="4", split_index=0)
    assert opts == {"eeg_path": cvpr.eeg_path, "splits_path": cvpr.single_path, "image_dir": cvpr.image_dir,
                    "subject": 4, "split_index": 0}
    ds = open_paired_dataset("eegcvpr40", "test", **opts)
    assert isinstance(ds, EEGCVPR40) and len(ds) == 2
    # --root fills the authors' file names.
    ds = open_paired_dataset_from_cli("eegcvpr40", "train", root=cvpr.root)
    assert len(ds) == 4
    with pytest.raises(ConfigError, match="--csv"):
        paired_dataset_options("eegcvpr40", root=cvpr.root, csv="x.csv")
    with pytest.raises(ConfigError, match="needs --eeg"):
        paired_dataset_options("eegcvpr40", splits=cvpr.single_path, images=cvpr.image_dir)
    with pytest.raises(ConfigError, match="needs --root"):
        paired_dataset_options("things-eeg2", subject=1)
    with pytest.raises(ConfigError, match="unknown dataset"):
        open_paired_dataset("imagenet-eeg", "train")
    with pytest.raises(ConfigError, match="does not take"):
        open_paired_dataset("eegcvpr40", "train", eeg_path=cvpr.eeg_path, bogus=1)
    t = write_things(tmp_path / "things")
    assert len(open_paired_dataset_from_cli("things-eeg2", "test", root=t.root, subject=1)) == 5


def test_register_a_dataset():
    calls = []

    def factory(split, root=None):
        calls.append((split, root))
        return [{"eeg": torch.zeros(2, 4), "image": None, "label": 0, "subject": 0, "image_name": "x"}]

    register_paired_dataset("unit-test-set", factory)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_paired_dataset("unit-test-set", lambda split: [])
        assert len(open_paired_dataset_from_cli("unit-test-set", "val", root="R")) == 1
        assert calls == [("val", "R")]
        with pytest.raises(ConfigError, match="does not take"):
            open_paired_dataset("unit-test-set", "val", csv_path="x")
    finally:
        PAIRED_DATASETS.pop("unit-test-set")


def test_dataloader_over_a_paired_dataset(cvpr):
    ds = open_paired_dataset("eegcvpr40", "train", eeg_path=cvpr.eeg_path, splits_path=cvpr.single_path,
                             image_dir=cvpr.image_dir)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False,
                                         collate_fn=PairCollator(ImageTransform(16, train=True)))
    batches = list(loader)
    assert [b["eeg"].shape for b in batches] == [(3, 128, 512), (1, 128, 512)]
    assert batches[0]["pixel_values"].shape == (3, 3, 16, 16)
    assert batches[0]["index"].tolist() == [0, 1, 2]
    assert torch.cat([b["label"] for b in batches]).tolist() == ds.labels


def test_folder_csv_paths_stay_inside_the_root(folder, tmp_path, capsys):
    import shutil

    from app_fixtures import tiny_pipeline_dir
    from dreamdiffusion.cli import main

    root = tmp_path / "f"
    shutil.copytree(folder, root)
    outside = write_jpeg(tmp_path / "elsewhere" / "secret.jpg", (1, 2, 3))
    csv = root / "pairs.csv"
    good = "eeg/rec_eeg.fif,1.0,images/img0.jpg,train\n"
    cases = {f"eeg/rec_eeg.fif,2.0,../elsewhere/{outside.name},train\n": "line 3: image '../elsewhere/secret.jpg'",
             f"eeg/rec_eeg.fif,2.0,{outside},train\n": f"line 3: image '{outside}'",
             f"{folder / 'eeg' / 'rec_eeg.fif'},2.0,images/img1.jpg,train\n": "line 3: eeg_file",
             "eeg/../../f/eeg/rec_eeg.fif,2.0,images/img1.jpg,train\n": None}  # leaves and comes back: inside
    (root / "images" / "link.jpg").symlink_to(outside)
    cases["eeg/rec_eeg.fif,2.0,images/link.jpg,train\n"] = "line 3: image 'images/link.jpg'"
    for row, msg in cases.items():
        csv.write_text("eeg_file,onset,image,split\n" + good + row)
        if msg is None:
            assert len(FolderPairs(root, split="train")) == 2
            continue
        with pytest.raises(DataError, match="is outside") as e:
            FolderPairs(root, split="train")
        assert e.value.path == str(csv) and msg in e.value.message and "--allow-outside-root" in e.value.message
        assert len(FolderPairs(root, split="train", allow_outside_root=True)) == 2

    # The command line: refused in one line naming the CSV and the row, exit 2; the flag lets it through.
    csv.write_text("eeg_file,onset,image,split\n" + good + f"eeg/rec_eeg.fif,2.0,../elsewhere/{outside.name},train\n")
    model = tiny_pipeline_dir(tmp_path / "model", channel_mapping="repeat")
    argv = ["generate", "--model", str(model), "--dataset", "folder", "--root", str(root), "--split", "train",
            "--num-images", "1", "--steps", "1", "--output", str(tmp_path / "out")]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {csv}: line 3: image '../elsewhere/secret.jpg'")
    assert not (tmp_path / "out" / "images").exists()
    assert main(argv + ["--allow-outside-root"]) == 0
    assert (tmp_path / "out" / "images" / "0001_truth.png").is_file()
    with pytest.raises(ConfigError, match="does not use --allow-outside-root"):
        paired_dataset_options("things-eeg2", root=root, allow_outside_root=True)
    assert paired_dataset_options("folder", root=root, allow_outside_root=True)["allow_outside_root"] is True
    assert "allow_outside_root" not in paired_dataset_options("folder", root=root)


def test_public_data_api_is_importable_and_lazy():
    import subprocess
    import sys

    import dreamdiffusion.data as data
    from dreamdiffusion.data.corpus import CorpusDataset, build_corpus
    from dreamdiffusion.data.io import read_raw

    # the names a user looks for first, at dreamdiffusion.data, are the classes and functions of their modules
    assert (data.EEGCVPR40, data.ThingsEEG2, data.FolderPairs) == (EEGCVPR40, ThingsEEG2, FolderPairs)
    assert (data.read_raw, data.build_corpus, data.CorpusDataset) == (read_raw, build_corpus, CorpusDataset)
    assert set(data.__all__) <= set(dir(data))
    with pytest.raises(AttributeError):
        getattr(data, "no_such_name")
    # Importing one submodule does not load the dataset readers (the names resolve on first use).
    code = ("import sys, dreamdiffusion.data.montage; "
            "print(sorted(m for m in sys.modules if m.startswith('dreamdiffusion.data')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['dreamdiffusion.data', 'dreamdiffusion.data.montage']"
