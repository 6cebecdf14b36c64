"""Reading real EEG in several formats, and refusing bad files with the file's name."""

import json

import mne
import numpy as np
import pytest

from dreamdiffusion.core.errors import EEGReadError
from dreamdiffusion.data.io import find_recordings, inspect_recording, read_raw, sample_raw
from eeg_files import FORMATS, pyedflib_edf, write_npy, write_raw, write_spkit


@pytest.mark.parametrize("fmt", FORMATS)
def test_real_recording_round_trips_through_every_writer(tmp_path, fmt, spkit_raw):
    ref = spkit_raw
    path = write_spkit(spkit_raw, tmp_path, fmt)
    raw = read_raw(path)
    assert raw.info["sfreq"] == 128.0
    assert raw.ch_names == ref.ch_names
    assert raw.n_times == 2048
    # EDF stores 16-bit integers: allow its quantisation; the others are float
    tol = 1e-7 if fmt == "edf" else 1e-10
    np.testing.assert_allclose(raw.get_data(), ref.get_data(), atol=tol)
    # standard positions come with the names
    assert np.isfinite(raw.info["chs"][0]["loc"][:3]).all()


def test_sample_is_the_real_emotiv_recording():
    raw = sample_raw()
    assert raw.ch_names[:3] == ["AF3", "F7", "F3"] and len(raw.ch_names) == 14
    std_uv = raw.get_data().std(axis=1) * 1e6
    assert np.all((std_uv > 20) & (std_uv < 200))  # real scalp EEG, microvolts


def test_pyedflib_clinical_edf():
    raw = read_raw(pyedflib_edf())
    assert raw.ch_names == ["Fp1"] and raw.info["sfreq"] == 128.0
    assert raw.n_times == 698 * 128


def test_npy_needs_rate_and_two_dims(tmp_path):
    data = np.random.default_rng(0).standard_normal((4, 1000)) * 50
    p = write_npy(tmp_path, data)
    raw = read_raw(p, sfreq=250.0)
    assert raw.info["sfreq"] == 250.0 and len(raw.ch_names) == 4
    np.testing.assert_allclose(raw.get_data(), data * 1e-6)
    raw = read_raw(p, sfreq=250, ch_names=["Fz", "Cz", "Pz", "Oz"])
    assert raw.ch_names == ["Fz", "Cz", "Pz", "Oz"]
    with pytest.raises(EEGReadError, match="sampling rate") as e:
        read_raw(p)
    assert str(p) in str(e.value)
    p3 = write_npy(tmp_path, np.zeros((2, 3, 4)), "rank3")
    with pytest.raises(EEGReadError, match="2-D") as e:
        read_raw(p3, sfreq=100)
    assert str(p3) in str(e.value)
    with pytest.raises(EEGReadError, match="empty"):
        read_raw(write_npy(tmp_path, np.zeros((3, 0)), "empty"), sfreq=100)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(EEGReadError, match="object arrays"):
        read_raw(obj, sfreq=100)


def _put(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.edf", "not found"),
    (lambda d: _put(d / "notes.txt", b"hello"), "unknown EEG file type"),
    (lambda d: _put(d / "zero.edf", b""), "empty"),
    (lambda d: _put(d / "junk.fif", b"\x00garbage" * 100), "cannot read"),
    (lambda d: _put(d / "junk.edf", b"0       " + b"\xff" * 300), "cannot read"),
    (lambda d: _put(d / "junk.vhdr", b"not a header\n"), "cannot read"),
    (lambda d: _put(d / "junk.set", b"MATLAB 5.0 nonsense" * 20), "cannot read"),
    (lambda d: d, "folder"),
])
def test_bad_files_raise_naming_the_file(tmp_path, make, match):
    path = make(tmp_path)
    with pytest.raises(EEGReadError, match=match) as e:
        read_raw(path)
    assert e.value.path == str(path)


@pytest.mark.parametrize("fmt", ["edf", "fif"])
def test_truncated_files_raise(tmp_path, fmt, spkit_raw):
    path = write_spkit(spkit_raw, tmp_path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(EEGReadError) as e:
        read_raw(path)
    assert e.value.path == str(path)


def test_nan_refused_or_repaired(tmp_path, spkit_raw):
    raw = spkit_raw.copy()
    data = raw.get_data()
    data[3, 100:110] = np.nan
    data[5, 7] = np.inf
    bad = mne.io.RawArray(data, raw.info, verbose="error")
    path = write_raw(bad, tmp_path, "nan", "fif")
    with pytest.raises(EEGReadError, match="10 NaN and 1 Inf") as e:
        read_raw(path)
    assert "repair" in str(e.value) and str(path) in str(e.value)
    fixed = read_raw(path, repair=True)
    out = fixed.get_data()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], data[0], rtol=1e-6)  # good channels untouched (FIF stores float32)
    # the interpolated channel follows its neighbours: correlated with the original
    ref = spkit_raw.get_data()[3]
    assert np.corrcoef(out[3], ref)[0, 1] > 0.3
    assert fixed.info["bads"] == []
    npy = write_npy(tmp_path, np.full((2, 100), np.nan), "allnan")
    with pytest.raises(EEGReadError, match="NaN"):
        read_raw(npy, sfreq=100)


def test_inspect_reports_channels_and_problems(tmp_path, spkit_raw):
    raw = spkit_raw
    data = raw.get_data()
    data[2] = 0.0  # flat
    data[4] *= 100  # extreme variance
    data[6, :5] = np.nan
    path = write_raw(mne.io.RawArray(data, raw.info, verbose="error"), tmp_path, "mixed", "fif")
    info = inspect_recording(path)
    assert info["n_channels"] == 14 and info["sfreq"] == 128.0
    assert info["duration_s"] == pytest.approx(16.0)
    assert info["ch_names"] == raw.ch_names
    assert info["flat_channels"] == ["F3"]
    assert set(info["bad_channels"]) == {"F3", "T7", "O1"}
    assert info["n_nan"] == 5 and info["n_inf"] == 0
    assert info["format"] == "fif"
    json.dumps(info)  # JSON-ready


def test_find_recordings_recurses_over_known_extensions(tmp_path, spkit_raw):
    write_spkit(spkit_raw, tmp_path / "a", "edf")
    write_spkit(spkit_raw, tmp_path / "a" / "b", "vhdr")
    (tmp_path / "a" / "readme.txt").write_text("x")
    found = find_recordings(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/b/spkit.vhdr", "a/spkit.edf"]
