"""Property-based fuzzing of the EEG readers and transforms (hypothesis).

Every malformed input (garbage bytes, truncated or bit-flipped real files, zero length, NaN/Inf,
absurd channel counts or rates, non-UTF-8 channel names) must end in the project's own error
or in a valid, finite recording: no other exception, no hang (a 30 s alarm per input), no
silent garbage. The number of inputs tried is printed at the end of the run.

``DD_FUZZ_EXAMPLES=N`` sets the examples per test (default 25, for CI); ``DD_FUZZ_RANDOM=1``
draws new inputs each run instead of the fixed (derandomised) sequence.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import tempfile
from pathlib import Path

import mne
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dreamdiffusion.core.errors import ConfigError, DataError, EEGReadError
from dreamdiffusion.data.io import read_raw
from dreamdiffusion.data.transforms import InputSpec, windows_from_raw
from eeg_files import write_raw

N = int(os.environ.get("DD_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=N, deadline=None, derandomize=os.environ.get("DD_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large], database=None)
TRIED: collections.Counter = collections.Counter()
OUTCOMES: collections.Counter = collections.Counter()


class _Summary:
    """Prints the counts in pytest's terminal summary (registered by the fixture below)."""

    def pytest_terminal_summary(self, terminalreporter):
        if TRIED:
            terminalreporter.write_line(f"fuzz inputs tried: {sum(TRIED.values())} "
                                        f"({', '.join(f'{k}={v}' for k, v in sorted(TRIED.items()))})")
            terminalreporter.write_line(f"fuzz outcomes: {dict(sorted(OUTCOMES.items()))}")


@pytest.fixture(scope="module", autouse=True)
def _small_eeg_limit():
    """The EEG size limit of the web app (256 MB) for every fuzzed input: a reader or transform that would
    allocate more must refuse instead, so a long run never takes the machine's memory (one did: 14 GB)."""
    old = os.environ.get("DREAMDIFFUSION_MAX_EEG_MB")
    os.environ["DREAMDIFFUSION_MAX_EEG_MB"] = "256"
    yield
    if old is None:
        os.environ.pop("DREAMDIFFUSION_MAX_EEG_MB", None)
    else:
        os.environ["DREAMDIFFUSION_MAX_EEG_MB"] = old


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    plugin = _Summary()
    if not request.config.pluginmanager.is_registered(plugin):
        request.config.pluginmanager.register(plugin, "dreamdiffusion-fuzz-summary")
    yield


@contextlib.contextmanager
def _alarm(seconds: int = 30):
    def boom(*_):
        raise TimeoutError(f"no answer within {seconds} s: the reader hangs")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _check_read(kind: str, path: Path, **kw) -> None:
    """read_raw either raises EEGReadError naming the file, or returns finite, sane data."""
    TRIED[kind] += 1
    try:
        with _alarm():
            raw = read_raw(path, **kw)
    except EEGReadError as exc:
        assert exc.path == str(path), exc
        assert exc.message and "\n" not in exc.message
        OUTCOMES["refused"] += 1
        return
    data = raw.get_data()
    assert data.ndim == 2 and data.shape[0] >= 1 and data.shape[1] >= 1
    assert np.isfinite(data).all()
    assert 0 < raw.info["sfreq"] <= 100_000
    OUTCOMES["read"] += 1


_FORMATS = {"edf": ".edf", "fif": "_raw.fif", "vhdr": ".vhdr", "set": ".set"}
@pytest.fixture(scope="module")
def seed_files(spkit_recording) -> dict[str, dict[str, bytes]]:
    """Per format, the bytes of a real 2 s, 14-channel recording written by MNE (all its files)."""
    seeds = {}
    for fmt in _FORMATS:
        with tempfile.TemporaryDirectory() as d:
            write_raw(spkit_recording.copy().crop(0, 2.0), Path(d), "seed", fmt)
            seeds[fmt] = {p.name: p.read_bytes() for p in Path(d).iterdir()}
    return seeds


def _main_name(fmt: str, files: dict[str, bytes]) -> str:
    return next(n for n in files if n.endswith(_FORMATS[fmt]))


@FUZZ
@given(ext=st.sampled_from([".edf", ".bdf", ".gdf", "_raw.fif", ".vhdr", ".set", ".cnt", ".npy", ".xyz", ""]),
       payload=st.binary(max_size=3000))
def test_garbage_bytes(ext, payload):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"garbage{ext}"
        path.write_bytes(payload)
        _check_read("garbage", path, sfreq=100.0)


@FUZZ
@given(fmt=st.sampled_from(sorted(_FORMATS)), which=st.integers(0, 2), cut=st.floats(0, 1),
       flips=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=16)), max_size=4),
       truncate=st.booleans())
def test_damaged_real_files(seed_files, fmt, which, cut, flips, truncate):
    """A real recording in each format, truncated and/or overwritten in places (headers included)."""
    files = dict(seed_files[fmt])
    names = sorted(files)
    victim = names[which % len(names)]
    blob = bytearray(files[victim])
    for where, junk in flips:
        i = int(where * max(0, len(blob) - len(junk)))
        blob[i:i + len(junk)] = junk
    if truncate:
        blob = blob[: int(cut * len(blob))]
    files[victim] = bytes(blob)
    with tempfile.TemporaryDirectory() as d:
        for n, b in files.items():
            (Path(d) / n).write_bytes(b)
        _check_read(f"damaged-{fmt}", Path(d) / _main_name(fmt, files))


@FUZZ
@given(label=st.binary(min_size=16, max_size=16).filter(lambda b: any(c >= 0x80 for c in b)),
       ch=st.integers(0, 13))
def test_non_utf8_channel_names_in_edf(seed_files, label, ch):
    """EDF labels are 16 bytes each, starting at byte 256; put undecodable bytes in one."""
    blob = bytearray(seed_files["edf"][_main_name("edf", seed_files["edf"])])
    start = 256 + 16 * ch
    blob[start:start + 16] = label
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "latin.edf"
        path.write_bytes(bytes(blob))
        _check_read("non-utf8-edf", path)


@FUZZ
@given(name=st.binary(min_size=1, max_size=12).filter(lambda b: b"\n" not in b and b"," not in b and b"\r" not in b))
def test_non_utf8_channel_names_in_brainvision(seed_files, name):
    files = dict(seed_files["vhdr"])
    vhdr = _main_name("vhdr", files)
    text = files[vhdr]
    # Channel lines look like "Ch1=AF3,,0.1,µV"; replace the first channel's name with raw bytes.
    i = text.index(b"Ch1=") + 4
    j = text.index(b",", i)
    files[vhdr] = text[:i] + name + text[j:]
    with tempfile.TemporaryDirectory() as d:
        for n, b in files.items():
            (Path(d) / n).write_bytes(b)
        _check_read("non-utf8-vhdr", Path(d) / vhdr)


_DTYPES = st.sampled_from([np.float64, np.float32, np.int16, np.int64, np.bool_, np.complex64, np.uint8])


@FUZZ
@given(arr=hnp.arrays(_DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40)),
       sfreq=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e12])),
       poison=st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_npy_arrays(arr, sfreq, poison):
    if poison is not None and arr.size and np.issubdtype(arr.dtype, np.floating):
        arr = arr.copy()
        arr.flat[0] = poison
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.npy"
        np.save(path, arr)
        _check_read("npy", path, sfreq=sfreq)


@FUZZ
@given(n_ch=st.integers(1, 6), n_t=st.integers(1, 3000), sfreq=st.floats(1.0, 5000.0),
       kind=st.sampled_from(["noise", "flat", "spiky", "huge"]),
       n_chans=st.integers(1, 40), n_times=st.integers(1, 300), target=st.floats(10.0, 2000.0),
       mapping=st.sampled_from(["repeat", "montage"]), stride=st.one_of(st.none(), st.integers(1, 300)),
       band=st.sampled_from([(5.0, 95.0), (None, None), (1.0, None), (None, 40.0)]))
def test_transforms_end_in_windows_or_our_error(n_ch, n_t, sfreq, kind, n_chans, n_times, target, mapping,
                                                stride, band):
    TRIED["transforms"] += 1
    rng = np.random.default_rng(n_ch * 7919 + n_t)
    data = {"noise": rng.standard_normal((n_ch, n_t)) * 20, "flat": np.full((n_ch, n_t), 3.0),
            "spiky": np.where(rng.random((n_ch, n_t)) < 0.01, 1e6, 0.0),
            "huge": rng.standard_normal((n_ch, n_t)) * 1e30}[kind]
    names = ["Fz", "Cz", "Pz", "Oz", "C3", "C4"][:n_ch]
    raw = mne.io.RawArray(data * 1e-6, mne.create_info(names, sfreq, "eeg"), verbose="error")
    try:
        spec = InputSpec(n_chans=n_chans, n_times=n_times, sfreq=target, l_freq=band[0], h_freq=band[1],
                         channel_mapping=mapping, window_stride=stride)
        with _alarm():
            w = windows_from_raw(raw, spec)
    except (DataError, ConfigError) as exc:
        assert exc.message
        OUTCOMES["transform-refused"] += 1
        return
    assert w.dtype == np.float32 and w.ndim == 3 and w.shape[1:] == (n_chans, n_times)
    assert np.isfinite(w).all(), "silent garbage: non-finite windows"
    OUTCOMES["transform-ok"] += 1


@FUZZ
@given(values=st.dictionaries(st.sampled_from(["n_chans", "n_times", "sfreq", "l_freq", "h_freq", "notch",
                                               "window_stride", "channel_mapping", "normalize"]),
                              st.one_of(st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                                        st.none(), st.text(max_size=5))))
def test_input_spec_rejects_nonsense(values):
    TRIED["input-spec"] += 1
    try:
        spec = InputSpec.from_dict(values)
    except ConfigError as exc:
        assert exc.message
        OUTCOMES["spec-refused"] += 1
        return
    assert spec.n_chans >= 1 and spec.n_times >= 1 and np.isfinite(spec.sfreq) and spec.sfreq > 0
    assert InputSpec.from_json(spec.to_json()) == spec
    OUTCOMES["spec-ok"] += 1


# ------------------------------------------------------------------------------------ model folders, CLI, uploads
SHIPPED = Path(__file__).resolve().parents[1] / "src" / "dreamdiffusion" / "assets" / "builtin"
_CONFIG_FILES = ["eeg_conditioner/config.json", "unet/config.json", "vae/config.json",
                 "scheduler/scheduler_config.json", "preprocessing.json", "generation.json", "model_index.json"]
_HUGE = st.sampled_from([10**6, 10**7, 10**9, 10**10, 2**63, -1, 0, -(10**9)])
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 3000) | _HUGE | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8) | st.sampled_from(["os.system", "diffusers", "../x", "evil.Model"]),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=8)


@pytest.fixture(scope="module")
def pipeline_copy(tmp_path_factory):
    """The shipped pipeline with real copies of its JSON files and symlinks to its weights."""
    dst = tmp_path_factory.mktemp("pipe") / "pipeline"
    for p in (SHIPPED / "pipeline").rglob("*"):
        target = dst / p.relative_to(SHIPPED / "pipeline")
        target.parent.mkdir(parents=True, exist_ok=True)
        if p.is_file():
            (target.write_bytes(p.read_bytes()) if p.suffix == ".json" else os.symlink(p, target))
    return dst


@FUZZ
@given(name=st.sampled_from(_CONFIG_FILES), edits=st.lists(st.tuples(st.text(max_size=20) | st.sampled_from(
    ["n_chans", "n_times", "embed_dim", "depth", "num_heads", "patch_size", "block_out_channels", "layers_per_block",
     "sample_size", "latent_channels", "num_train_timesteps", "num_inference_steps", "guidance_scale", "unet",
     "eeg_conditioner", "auto_map", "cross_attention_dim", "in_channels", "sfreq", "_class_name", "beta_end"]),
    _JSON_VALUES), min_size=1, max_size=3), whole=st.none() | _JSON_VALUES)
def test_model_folder_configs(pipeline_copy, name, edits, whole):
    """A mutated config of a real pipeline folder: the pipeline loads (a harmless value), or one ConfigError
    naming a file of the folder; never another exception, a hang, or a load that allocates gigabytes."""
    import json

    from dreamdiffusion.pipeline import DreamDiffusionPipeline

    TRIED["model-config"] += 1
    path = pipeline_copy / name
    original = (SHIPPED / "pipeline" / name).read_text()
    data = json.loads(original)
    for key, value in edits:
        data[key] = value
    try:
        path.write_text(json.dumps(whole if whole is not None else data))
        with _alarm():
            DreamDiffusionPipeline.from_pretrained(pipeline_copy)
        OUTCOMES["config-loaded"] += 1
    except ConfigError as exc:
        assert exc.path and str(pipeline_copy) in exc.path and "\n" not in exc.message, exc
        OUTCOMES["config-refused"] += 1
    finally:
        path.write_text(original)


_NUMBER_TEXT = (st.sampled_from(["nan", "inf", "-inf", "NaN", "1e309", "-0", "0x10", "1_000", " 3 ", "", "1e3",
                                 str(2**70), str(-(2**63)), "3.5", "abc"])
                | st.integers(-(2**70), 2**70).map(str) | st.floats(allow_nan=True, allow_infinity=True).map(repr)
                | st.text(max_size=6))
_NUMBER_FLAGS = ["--guidance", "--batch-size", "--onset", "--steps", "--num-images", "--seed", "--sfreq", "--limit",
                 "--split-index"]


@FUZZ
@given(flags=st.lists(st.tuples(st.sampled_from(_NUMBER_FLAGS), _NUMBER_TEXT), min_size=1, max_size=3))
def test_cli_number_arguments(tmp_path_factory, flags):
    """`generate` with fuzzed numbers: exit 2 with one `error:` line (a bad number names its flag), before
    anything is loaded (the EEG file does not exist, so valid numbers end there)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from dreamdiffusion.cli import main

    TRIED["cli-numbers"] += 1
    tmp = tmp_path_factory.mktemp("cli")
    argv = ["generate", "--eeg-file", str(tmp / "none.edf"), "--output", str(tmp / "o")]
    for flag, text in flags:
        argv.append(f"{flag}={text}")
    err, out = io.StringIO(), io.StringIO()
    with _alarm(), redirect_stderr(err), redirect_stdout(out):
        code = main(argv)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err.getvalue(), (argv, err.getvalue())
    assert "internal error" not in lines[0], lines[0]
    assert ("EEG file not found" in lines[0]) or any(f in lines[0] for f, _ in flags) or "--dataset" in lines[0], \
        lines[0]
    OUTCOMES["cli-refused-number" if "EEG file not found" not in lines[0] else "cli-numbers-ok"] += 1
    assert not (tmp / "o").exists()


_UPLOAD_NAMES = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1,
                        max_size=40).filter(lambda n: n not in (".", "..") and len(n.encode("utf-8")) < 200)
_UPLOAD_SUFFIX = st.sampled_from([".fif", ".FIF", ".edf", ".vhdr", ".set", ".fif.gz", ".exe", "", ".fif.exe", ".npy",
                                  ".bdf", ".gdf", ".cnt"])


@FUZZ
@given(stem=_UPLOAD_NAMES, suffix=_UPLOAD_SUFFIX, content=st.sampled_from(["fif", "edf", "garbage", "empty"]))
def test_upload_names(seed_files, stem, suffix, content):
    """The app's upload path with any file name: a loaded recording, or one EEGReadError that names only the
    upload's own name (never a folder of the server)."""
    from dreamdiffusion.app.web import load_recording

    TRIED["upload-names"] += 1
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{stem}{suffix}"
        if content == "fif" or content == "edf":
            fmt = "fif" if content == "fif" else "edf"
            blob = next(b for n, b in seed_files[fmt].items() if n.endswith(_FORMATS[fmt]))
        else:
            blob = b"" if content == "empty" else b"\x00garbage" * 10
        try:
            path.write_bytes(blob)
        except OSError:
            return  # a name this file system refuses: not something an upload can carry either
        try:
            with _alarm():
                loaded = load_recording(path, max_mb=5)
            assert len(loaded.raw.ch_names) >= 1
            OUTCOMES["upload-loaded"] += 1
        except EEGReadError as exc:
            assert d not in str(exc) and "\n" not in str(exc), str(exc)
            OUTCOMES["upload-refused"] += 1
