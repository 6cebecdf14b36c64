"""Safe loading and bad input for the paired-dataset loaders (issue 6, items 2 and 3).

* A data file whose pickle would run code is refused with a DataError naming the file, and the
  code does not run (each test first proves its payload is live: a full unpickler runs it).
* Images that are not images, corrupt split files and EEG dicts, fuzzed with hypothesis: every
  input ends in the loaded dataset or in a DataError, never another exception or a hang.

The number of fuzzed inputs is printed per test (run with ``-s``) and checked against a floor.
"""

import builtins
import io
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dreamdiffusion.core.errors import DataError, DreamDiffusionError
from dreamdiffusion.data.images import load_image
from dreamdiffusion.data.pairs import EEGCVPR40, FolderPairs, ThingsEEG2, load_npy, restricted_unpickle, safe_torch_load
from pairs_fixtures import THINGS_CHANNELS, WNIDS, write_cvpr40, write_jpeg, write_things

# ------------------------------------------------------------------------------------ code in pickles


def _write_marker(path):
    Path(path).write_text("code ran")
    return 0


class RunsAFunction:
    """Unpickling this calls _write_marker(path): the classic malicious-pickle pattern."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_write_marker, (self.marker,))


class RunsExec:
    """Unpickling this calls builtins.exec: a harmless-looking module with a deadly name."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('code ran')",))


pytestmark = pytest.mark.usefixtures("fresh_pairs_cache")


@pytest.mark.parametrize("payload", [RunsAFunction, RunsExec])
@pytest.mark.parametrize("which", ["eeg", "splits"])
def test_pth_that_would_run_code_is_refused(tmp_path, payload, which):
    c = write_cvpr40(tmp_path / "c")
    marker = tmp_path / "marker.txt"
    target = c.eeg_path if which == "eeg" else c.single_path
    if which == "eeg":
        data = torch.load(c.eeg_path, weights_only=True)
        data["dataset"][0]["extra"] = payload(marker)
    else:
        data = {"splits": [{"train": [0, 1], "val": [2], "test": payload(marker)}]}
    torch.save(data, target)
    with pytest.raises(DataError, match="refused") as e:
        EEGCVPR40(c.eeg_path, c.single_path, c.image_dir, split="train")
    assert e.value.path == str(target)
    assert "could run code" in str(e.value) and "weights_only=False" not in str(e.value)
    assert not marker.exists()
    # The payload is live: torch's full unpickler runs it.
    torch.load(target, weights_only=False)
    assert marker.read_text() == "code ran"


@pytest.mark.parametrize("payload", [RunsAFunction, RunsExec])
def test_npy_dict_that_would_run_code_is_refused(tmp_path, payload):
    t = write_things(tmp_path / "things")
    marker = tmp_path / "marker.txt"
    path = t.root / "sub-01" / "preprocessed_eeg_test.npy"
    np.save(path, {"preprocessed_eeg_data": t.test, "ch_names": THINGS_CHANNELS, "times": t.times,
                   "note": payload(marker)}, allow_pickle=True)
    with pytest.raises(DataError, match="refused") as e:
        ThingsEEG2(t.root, "test")
    assert e.value.path == str(path)
    assert not marker.exists()
    np.load(path, allow_pickle=True)  # what np.load(allow_pickle=True) would have done
    assert marker.read_text() == "code ran"


def test_restricted_unpickler_reads_arrays_and_containers():
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": ["x", 1, 2.5, None, (1, 2)], "c": np.int64(7),
           "d": {"nested": np.array(["u", "v"])}, "e": b"bytes", "f": {1, 2}}
    for protocol in (2, 3, 4, 5):
        out = restricted_unpickle(io.BytesIO(pickle.dumps(obj, protocol=protocol)))
        assert np.array_equal(out["a"], obj["a"]) and out["a"].dtype == np.float32
        assert out["b"] == obj["b"] and out["c"] == 7 and out["e"] == b"bytes" and out["f"] == {1, 2}
        assert out["d"]["nested"].tolist() == ["u", "v"]
    # numpy 1 wrote numpy.core.multiarray where numpy 2 writes numpy._core.multiarray: both load.
    old_style = pickle.dumps(obj["a"], protocol=2).replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in old_style
    assert np.array_equal(restricted_unpickle(io.BytesIO(old_style)), obj["a"])
    for bad in (os.system, eval, getattr, shutil.rmtree, np.load):
        with pytest.raises(pickle.UnpicklingError, match="refused global"):
            restricted_unpickle(io.BytesIO(pickle.dumps(bad)))


def test_restricted_unpickler_reads_spkits_real_eeg_pickle():
    from dreamdiffusion.data.io import spkit_sample_path

    with open(spkit_sample_path(), "rb") as fh:
        X, ch = restricted_unpickle(fh)
    X, ch = np.asarray(X), [str(c) for c in ch]
    assert X.shape == (2048, 14) and ch[:3] == ["AF3", "F7", "F3"]
    assert 30 < X.std() < 200  # microvolts


def test_numpy_content_in_pth_files_loads_but_numpy_functions_do_not(tmp_path):
    c = write_cvpr40(tmp_path / "c")
    data = torch.load(c.eeg_path, weights_only=True)
    for t in data["dataset"]:
        t["eeg"] = t["eeg"].numpy()  # saved by a numpy-based script
        t["label"] = np.int64(t["label"])
    torch.save(data, c.eeg_path)
    torch.save({"splits": [{"train": np.array([0, 1, 2]), "val": [np.int64(6)], "test": [8, 9]}]}, c.single_path)
    ds = EEGCVPR40(c.eeg_path, c.single_path, c.image_dir, split="train")
    assert len(ds) == 3 and ds[0]["eeg"].shape == (128, 512) and ds.labels == [0, 1, 2]
    torch.save({"x": np.load}, tmp_path / "f.pth")
    with pytest.raises(DataError, match="refused.*numpy"):
        safe_torch_load(tmp_path / "f.pth")


def test_plain_npy_and_torch_files_load(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(4.0))
    assert load_npy(tmp_path / "a.npy").tolist() == [0, 1, 2, 3]
    torch.save({"x": torch.ones(2), "names": ["a"]}, tmp_path / "a.pth")
    assert safe_torch_load(tmp_path / "a.pth")["names"] == ["a"]
    torch.save({"x": torch.ones(2)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert safe_torch_load(tmp_path / "legacy.pth")["x"].tolist() == [1.0, 1.0]
    for name, content in (("empty.pth", b""), ("text.pth", b"hello world\n")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DataError) as e:
            safe_torch_load(tmp_path / name)
        assert e.value.path == str(tmp_path / name)
    with pytest.raises(DataError, match="not found"):
        safe_torch_load(tmp_path / "nope.pth")


def test_none_among_image_names_is_refused(tmp_path):
    """Found by a 1,000-input fuzz run: a None in 'images' slipped past the check for strings."""
    c = write_cvpr40(tmp_path / "c")
    data = torch.load(c.eeg_path, weights_only=True)
    data["images"] = [None] + data["images"][1:]
    torch.save(data, c.eeg_path)
    with pytest.raises(DataError, match="must hold strings, found NoneType") as e:
        EEGCVPR40(c.eeg_path, c.single_path, c.image_dir)
    assert e.value.path == str(c.eeg_path)


# ------------------------------------------------------------------------------------ images that are not images


def test_dataset_item_with_text_file_named_jpeg(tmp_path):
    c = write_cvpr40(tmp_path / "c")
    ds = EEGCVPR40(c.eeg_path, c.single_path, c.image_dir, split="train")
    target = ds.image_path(0)
    target.write_text("<html>404 Not Found</html>")
    with pytest.raises(DataError) as e:
        ds[0]
    assert e.value.path == str(target)
    data = write_jpeg(tmp_path / "x.JPEG", size=(64, 64)).read_bytes()
    target.write_bytes(data[: len(data) * 2 // 3])  # truncated download
    with pytest.raises(DataError) as e:
        ds[0]
    assert e.value.path == str(target)


# ------------------------------------------------------------------------------------ fuzzing

# DREAMDIFFUSION_FUZZ_EXAMPLES=1000 for a longer run than CI's.
N_FUZZ = int(os.environ.get("DREAMDIFFUSION_FUZZ_EXAMPLES", "120"))
FUZZ = settings(max_examples=N_FUZZ, deadline=10_000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
COUNTS: dict[str, int] = {}


def _count(name):
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _tensors():
    dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int16, torch.int64, torch.bool,
                              torch.complex64, torch.uint8])
    shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)
    return st.builds(lambda s, d: torch.zeros(s, dtype=d), shapes, dtypes)


_LEAVES = (st.none() | st.booleans() | st.integers(-3, 20) | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4) | _tensors())
_KEYS = st.sampled_from(["splits", "train", "val", "test", "dataset", "eeg"]) | st.text(max_size=3) | st.integers(-1, 3)
_OBJECTS = st.recursive(_LEAVES, lambda c: st.lists(c, max_size=4) | st.tuples(c, c)
                        | st.dictionaries(_KEYS, c, max_size=4), max_leaves=12)

# Near-valid split files: the right skeleton with fuzzed contents.
_INDEX = st.integers(-3, 12) | st.floats(-1, 12) | st.booleans() | st.text(max_size=2) | st.none()
_INDEX_LIST = st.lists(_INDEX, max_size=8) | st.builds(
    lambda v: torch.tensor(v), st.lists(st.integers(-2, 11), max_size=6)) | _OBJECTS
_SPLIT_ENTRY = st.dictionaries(st.sampled_from(["train", "val", "test", "Train", "x"]), _INDEX_LIST, max_size=4)
_VALID_ENTRY = st.fixed_dictionaries({k: st.lists(st.integers(0, 9), max_size=6) for k in ("train", "val", "test")})
_SPLIT_FILES = (_OBJECTS | st.builds(lambda e: {"splits": e}, st.lists(_SPLIT_ENTRY | _OBJECTS, max_size=3))
                | st.builds(lambda e: {"splits": e}, st.lists(_VALID_ENTRY, min_size=1, max_size=3))
                | st.builds(lambda e, bad: {"splits": [{**e, "train": e["train"] + [bad]}]}, _VALID_ENTRY, _INDEX))


def _check_outcome(build, iterate=True):
    """Build a dataset and read every item; only success or DataError are acceptable."""
    try:
        ds = build()
        if iterate:
            for i in range(len(ds)):
                try:
                    item = ds[i]
                except DataError:
                    continue
                x = item["eeg"]
                assert x.dtype == torch.float32 and x.ndim == 2 and torch.isfinite(x).all()
                assert item["image"].mode == "RGB"
        return "ok"
    except DataError as exc:
        assert exc.path, f"error without a file: {exc}"
        return "error"


@FUZZ
@given(obj=_SPLIT_FILES, split=st.sampled_from(["train", "val", "test"]), subject=st.sampled_from([0, 4]),
       index=st.integers(-1, 3))
def test_fuzz_split_files(cvpr_shared, tmp_path_factory, obj, split, subject, index):
    _count("split files")
    path = tmp_path_factory.mktemp("s") / "split.pth"
    torch.save(obj, path)  # a new path per input, so the loader's file cache never serves a stale one
    _count("split files " + _check_outcome(lambda: EEGCVPR40(cvpr_shared.eeg_path, path, cvpr_shared.image_dir,
                                                              split=split, subject=subject, split_index=index)))


_EEG_VALUE = (st.builds(lambda c, l, d, bad: _eeg_tensor(c, l, d, bad),
                        st.sampled_from([0, 1, 4, 128]), st.sampled_from([0, 5, 449, 450, 500, 600, 601]),
                        st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int16, torch.bool,
                                         torch.complex64]),
                        st.sampled_from([None, "nan", "inf"]))
              | _tensors() | _LEAVES)


def _eeg_tensor(c, length, dtype, bad):
    x = torch.ones(c, length, dtype=torch.float32)
    if bad and x.numel():
        x[0, x.shape[1] // 2] = float(bad)
    return x.to(dtype)


_INT_FIELD = st.integers(-2, 9) | st.floats(0, 3) | st.text(max_size=2) | st.none() | st.booleans() | _tensors()
_NAMES = st.lists(st.sampled_from(["n02690373_100", "../../etc/passwd", "", ".hidden", "a/b", 3, None]), max_size=8)
_IMAGES = [f"{w}_{100 + k}" for w in WNIDS for k in range(2)]


@st.composite
def _eeg_files(draw):
    """A valid eeg_5_95_std.pth dict with 0-3 faults: a bad field value, a missing key, NaN/Inf in
    a trial, a wrong shape or dtype, a malformed list, or a wholly different object."""
    n = draw(st.integers(6, 8))
    trials = [{"eeg": torch.randn(4, draw(st.sampled_from([450, 500, 600]))), "image": k % 8, "label": (k % 8) // 2,
               "subject": 4} for k in range(n)]
    data = {"dataset": trials, "labels": list(WNIDS), "images": list(_IMAGES)}
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["field", "field", "eeg", "eeg", "drop-field", "top", "drop-top", "whole"]))
        t = trials[draw(st.integers(0, n - 1))]
        if kind == "field":
            t[draw(st.sampled_from(["image", "label", "subject"]))] = draw(_INT_FIELD)
        elif kind == "eeg":
            t["eeg"] = draw(_EEG_VALUE)
        elif kind == "drop-field":
            t.pop(draw(st.sampled_from(["eeg", "image", "label", "subject"])), None)
        elif kind == "top":
            key = draw(st.sampled_from(["dataset", "labels", "images"]))
            data[key] = draw(_NAMES if key == "images" else _OBJECTS)
        elif kind == "drop-top":
            data.pop(draw(st.sampled_from(["dataset", "labels", "images"])), None)
        else:
            return draw(_OBJECTS)
    return data


@FUZZ
@given(obj=_eeg_files())
def test_fuzz_eeg_dicts(cvpr_shared, tmp_path_factory, obj):
    _count("EEG dicts")
    path = tmp_path_factory.mktemp("e") / "eeg.pth"
    torch.save(obj, path)
    split = tmp_path_factory.mktemp("e") / "split.pth"
    torch.save({"splits": [{"train": [0, 1, 2], "val": [3], "test": [4, 5]}]}, split)
    _count("EEG dicts " + _check_outcome(lambda: EEGCVPR40(path, split, cvpr_shared.image_dir, split="train", subject=4,
                                                            length_range=(0, 10_000))))


@pytest.fixture(scope="module")
def things(tmp_path_factory):
    return write_things(tmp_path_factory.mktemp("fuzz") / "things")


_ARRAY = st.builds(lambda shape, dt, bad: _array(shape, dt, bad),
                   st.sampled_from([(5, 2, 17, 10), (5, 2, 17, 1), (5, 2, 3, 10), (4, 2, 17, 10), (5, 0, 17, 10),
                                    (5, 17, 10), (5, 1, 1, 17, 10), (), (5, 2, 17, 0)]),
                   st.sampled_from(["float32", "float64", "int8", "complex64", "bool", "U3", "object"]),
                   st.sampled_from([None, "nan", "inf"]))


def _array(shape, dtype, bad):
    a = np.ones(shape, dtype=np.float64)
    if bad and a.size:
        a.flat[a.size // 2] = float(bad)
    with np.errstate(invalid="ignore"):  # NaN / inf cast to an integer type on purpose: a damaged file's values
        return a.astype(dtype)


@st.composite
def _things_dicts(draw):
    """A valid preprocessed_eeg_test.npy dict (5 conditions) with 0-2 faults."""
    data = {"preprocessed_eeg_data": np.random.default_rng(0).standard_normal((5, 2, 17, 10)).astype(np.float32),
            "ch_names": list(THINGS_CHANNELS), "times": np.linspace(-0.2, 0.8, 10)}
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["eeg", "eeg", "nan", "names", "times", "drop", "whole"]))
        if kind == "eeg":
            data["preprocessed_eeg_data"] = draw(_ARRAY | _OBJECTS)
        elif kind == "nan":
            arr = data.get("preprocessed_eeg_data")
            if isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and arr.size:
                arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        elif kind == "names":
            data["ch_names"] = draw(st.just(np.array(THINGS_CHANNELS))
                                    | st.lists(st.text(max_size=3) | st.integers(), max_size=18) | _LEAVES)
        elif kind == "times":
            data["times"] = draw(st.builds(lambda n: np.linspace(-0.2, 0.8, n), st.sampled_from([0, 1, 10, 11]))
                                 | st.just(np.full(10, np.nan)) | _LEAVES)
        elif kind == "drop":
            data.pop(draw(st.sampled_from(["preprocessed_eeg_data", "ch_names", "times"])), None)
        elif kind == "whole":
            return draw(_OBJECTS)
    return data


@FUZZ
@given(obj=_things_dicts(), window=st.sampled_from([None, None, (0.0, 0.5), (5.0, 6.0)]))
def test_fuzz_things_dicts(things, tmp_path_factory, obj, window):
    _count("THINGS-EEG2 dicts")
    root = tmp_path_factory.mktemp("t")
    (root / "sub-01").mkdir()
    os.symlink(things.root / "test_images", root / "test_images")
    np.save(root / "sub-01" / "preprocessed_eeg_test.npy", np.array(obj, dtype=object) if not isinstance(
        obj, np.ndarray) else obj, allow_pickle=True)
    try:
        _count("THINGS-EEG2 dicts " + _check_outcome(lambda: ThingsEEG2(root, "test", time_window=window)))
    except DreamDiffusionError as exc:  # ConfigError for a window outside the epoch
        assert type(exc).__name__ == "ConfigError" and window == (5.0, 6.0)


def _mutations(data: bytes):
    """Truncations, bit flips and garbage of a valid file's bytes."""
    n = len(data)
    return st.one_of(
        st.integers(0, n - 1).map(lambda k: data[:k]),
        st.tuples(st.integers(0, n - 1), st.integers(1, 255)).map(
            lambda t: data[:t[0]] + bytes([data[t[0]] ^ t[1]]) + data[t[0] + 1:]),
        st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=16)).map(
            lambda t: data[:t[0]] + t[1] + data[t[0] + len(t[1]):]),
        st.binary(max_size=256),
    )


def _valid_bytes():
    buf = io.BytesIO()
    np.save(buf, {"preprocessed_eeg_data": np.ones((2, 1, 3, 4), np.float32), "ch_names": ["a", "b", "c"],
                  "times": np.arange(4.0)}, allow_pickle=True)
    npy = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"splits": [{"train": [0, 1], "val": [2], "test": [3]}]}, buf)
    pth = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"x": torch.ones(3)}, buf, _use_new_zipfile_serialization=False)
    legacy = buf.getvalue()
    return npy, pth, legacy


_NPY, _PTH, _LEGACY = _valid_bytes()


@FUZZ
@given(data=_mutations(_NPY))
def test_fuzz_npy_bytes(tmp_path_factory, data):
    _count("npy bytes")
    path = tmp_path_factory.mktemp("b") / "x.npy"
    path.write_bytes(data)
    try:
        load_npy(path)
    except DataError as exc:
        assert exc.path == str(path)


@FUZZ
@given(data=_mutations(_PTH) | _mutations(_LEGACY))
def test_fuzz_pth_bytes(tmp_path_factory, data):
    _count("pth bytes")
    path = tmp_path_factory.mktemp("b") / "x.pth"
    path.write_bytes(data)
    try:
        safe_torch_load(path)
    except DataError as exc:
        assert exc.path == str(path)


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (16, 24, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


_JPEG = _jpeg_bytes()


@FUZZ
@given(data=_mutations(_JPEG))
def test_fuzz_image_bytes(tmp_path_factory, data):
    _count("image bytes")
    path = tmp_path_factory.mktemp("i") / "n02690373_1.JPEG"
    path.write_bytes(data)
    try:
        img = load_image(path)
        assert img.mode == "RGB" and img.size[0] > 0
    except DataError as exc:
        assert exc.path == str(path)


_CSV_CELLS = st.sampled_from(["eeg/rec_eeg.fif", "eeg/none.fif", "", "1.0", "-1", "nan", "inf", "1e9", "abc", "train",
                              "val", "holdout", "img0.jpg", "../x.jpg", '"', ",", "\n"]) | st.text(max_size=4)
_CSV_TEXT = st.lists(st.lists(_CSV_CELLS, min_size=1, max_size=6), max_size=5).flatmap(
    lambda rows: st.sampled_from([["eeg_file", "onset", "image", "split"], ["eeg_file", "image"], ["image"],
                                  ["eeg_file", "onset", "image", "label", "subject"]]).map(
        lambda head: "\n".join(",".join(r) for r in [head] + rows) + "\n")) | st.text(max_size=60)


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory, spkit_recording):
    from pairs_fixtures import write_spkit_fif

    root = tmp_path_factory.mktemp("csv")
    write_spkit_fif(spkit_recording, root / "eeg" / "rec_eeg.fif")
    write_jpeg(root / "img0.jpg")
    return root


@settings(FUZZ, max_examples=max(1, N_FUZZ * 5 // 6))
@given(text=_CSV_TEXT, split=st.sampled_from(["train", "val", "test"]))
def test_fuzz_pairs_csv(csv_root, text, split):
    _count("pairs CSVs")
    (csv_root / "pairs.csv").write_bytes(text.encode("utf-8", errors="replace"))
    try:
        _check_outcome(lambda: FolderPairs(csv_root, split=split, val_fraction=0.3, test_fraction=0.3))
    except DreamDiffusionError as exc:  # EEGReadError from the EEG reader names the EEG file
        assert exc.path


def test_fuzz_counts_report():
    """Runs last in this module: prints and checks how many inputs each fuzz test tried."""
    if not COUNTS:
        pytest.skip("run with the fuzz tests")
    inputs = {k: v for k, v in COUNTS.items() if not k.endswith((" ok", " error"))}
    print("\nfuzzed inputs: " + ", ".join(f"{k}: {v}" for k, v in COUNTS.items())
          + f" (total {sum(inputs.values())} inputs)")
    for name, n in COUNTS.items():
        if not name.endswith((" ok", " error")):
            assert n >= min(50, N_FUZZ // 2), f"only {n} {name} tried"
    # The structured fuzzers reach both outcomes: valid files load, broken ones are refused.
    for name in ("split files", "EEG dicts", "THINGS-EEG2 dicts"):
        if name in COUNTS:
            assert COUNTS.get(name + " ok", 0) > 0 and COUNTS.get(name + " error", 0) > 0, name


# ------------------------------------------------------------------------------------ through the CLI


def _finetune_argv(root, out):
    return ["finetune", "--dataset", "eegcvpr40", "--root", str(root), "--output", str(out),
            "--base", "builtin-tiny", "--clip", "builtin-tiny", "--max-steps", "1"]


def test_cli_refuses_code_running_split_file_in_one_line(tmp_path, capsys):
    from dreamdiffusion.cli import main

    c = write_cvpr40(tmp_path / "c")
    marker = tmp_path / "marker.txt"
    torch.save({"splits": [{"train": [0, 1], "val": [6], "test": RunsAFunction(marker)}]}, c.single_path)
    assert main(_finetune_argv(c.root, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {c.single_path}: refused to load split file")
    assert "Traceback" not in err[0] and not marker.exists()


def test_cli_split_indices_out_of_range_in_one_line(tmp_path, capsys):
    from dreamdiffusion.cli import main

    c = write_cvpr40(tmp_path / "c")
    torch.save({"splits": [{"train": [0, 1, 99], "val": [6], "test": [8]}]}, c.single_path)
    assert main(_finetune_argv(c.root, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {c.single_path}: split indices out of range")
