"""Transforms on signals with known answers."""

import mne
import numpy as np
import pytest

from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.data import array_transforms as A
from dreamdiffusion.data import montage as M
from dreamdiffusion.data import transforms as T


def _raw(data_uv, sfreq, names=None):
    names = names or [f"EEG{i:03d}" for i in range(len(data_uv))]
    return mne.io.RawArray(np.asarray(data_uv) * 1e-6, mne.create_info(names, sfreq, "eeg"), verbose="error")


def _peak_hz(x, sfreq):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sfreq)[np.argmax(spec)]


def _amp_at(x, sfreq, f):
    """Amplitude of the component at f Hz (least squares on sin/cos, edges trimmed)."""
    t = np.arange(len(x)) / sfreq
    A = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], 1)
    coef, *_ = np.linalg.lstsq(A, x, rcond=None)
    return float(np.hypot(*coef))


def test_input_spec_defaults_and_json_round_trip(tmp_path):
    spec = T.InputSpec()
    assert (spec.n_chans, spec.n_times) == (128, 512)
    assert spec.sfreq == pytest.approx(512 / 0.44)
    assert spec.window_s == pytest.approx(0.44)
    assert spec.stride == 512
    custom = T.InputSpec(n_chans=8, n_times=64, sfreq=250.0, l_freq=1.0, h_freq=40.0, notch=50.0,
                         channel_mapping="montage", normalize="none", window_stride=32)
    assert T.InputSpec.from_json(custom.to_json()) == custom
    custom.to_json(tmp_path / "spec.json")
    assert T.InputSpec.from_json(tmp_path / "spec.json") == custom
    with pytest.raises(ConfigError):
        T.InputSpec(channel_mapping="nearest")
    with pytest.raises(ConfigError):
        T.InputSpec(l_freq=50, h_freq=10)
    with pytest.raises(ConfigError):
        T.InputSpec.from_dict({"n_chans": 4, "bogus": 1})


def test_input_spec_numbers_go_through_the_one_number_check():
    """Sizes and frequencies are checked by core.config.check_number: one line naming the field, its range and
    the value; NumPy scalars pass as plain numbers, so the spec still writes as JSON."""
    for kw, says in [({"n_chans": 0}, "n_chans must be an integer between 1 and 4096, got 0"),
                     ({"n_times": 2.5}, "n_times must be an integer between 1 and 10_000_000, got 2.5"),
                     ({"window_stride": True}, "window_stride must be an integer between 1 and 10_000_000, got True"),
                     ({"sfreq": 0}, "sfreq (Hz) must be a number between 0.001 and 1e+06, got 0"),
                     ({"notch": float("nan")}, "notch (Hz) must be a number between 0.001 and 1e+06, got nan"),
                     ({"h_freq": "95"}, "h_freq (Hz) must be a number between 0.001 and 1e+06, got '95'")]:
        with pytest.raises(ConfigError) as exc:
            T.InputSpec(**kw)
        assert str(exc.value.message) == says and "\n" not in str(exc.value)
    spec = T.InputSpec(n_chans=np.int64(4), n_times=np.float32(64.0), sfreq=np.float32(250.0), l_freq=None)
    assert (type(spec.n_chans), type(spec.n_times), type(spec.sfreq)) == (int, int, float)
    assert T.InputSpec.from_json(spec.to_json()) == spec


def test_stretch_time_matches_np_interp():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 440))
    y = A.stretch_time(x, 512)
    assert y.shape == (3, 512)
    ref = np.stack([np.interp(np.linspace(0, 1, 512), np.linspace(0, 1, 440), r) for r in x])
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    # end points aligned; shrinking works too
    assert y[:, 0] == pytest.approx(x[:, 0]) and y[:, -1] == pytest.approx(x[:, -1])
    z = A.stretch_time(x, 100)
    np.testing.assert_allclose(z[1], np.interp(np.linspace(0, 1, 100), np.linspace(0, 1, 440), x[1]))
    np.testing.assert_array_equal(A.stretch_time(np.array([[2.0]]), 4), [[2.0] * 4])


def test_map_channels_repeat_tiles_and_tops_up():
    data = np.arange(5)[:, None] * np.ones((5, 7))
    out = A.map_channels_repeat(data, 12)
    assert out.shape == (12, 7)
    # tile 0..4, 0..4, then top up with the first ones
    np.testing.assert_array_equal(out[:, 0], [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(A.map_channels_repeat(data, 3)[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(A.map_channels_repeat(data, 5), data)


def test_default_target_channels_are_distinct_scalp_positions():
    names = T.default_target_channels(128)
    assert len(names) == 128 == len(set(names))
    assert "Cz" in names
    assert T.default_target_channels(128) == names  # deterministic
    small = T.default_target_channels(16)
    assert len(small) == 16 and "Cz" in small


def test_map_channels_montage_exact_at_sources_and_smooth_elsewhere():
    src = ["Fz", "Cz", "Pz", "C3", "C4", "Oz", "F3", "F4"]
    rng = np.random.default_rng(1)
    data = rng.standard_normal((len(src), 50))
    # targets that are source channels: identical rows (case-insensitive)
    out = A.map_channels_montage(data, src, ["cz", "Fz", "C4"])
    np.testing.assert_allclose(out, data[[1, 0, 4]])
    # a constant field over the scalp stays (nearly) constant after spherical-spline interpolation
    const = np.ones((len(src), 10))
    targets = T.default_target_channels(32)
    out = A.map_channels_montage(const, src, targets)
    assert out.shape == (32, 10)
    assert np.all(np.isfinite(out))
    # a target between C3 and Cz is a blend of the two, closer to them than to the far channels
    lin = np.zeros((len(src), 1))
    lin[src.index("C3")] = 1.0
    lin[src.index("Cz")] = 1.0
    mid = A.map_channels_montage(lin, src, ["C1", "Oz", "F4"])[:, 0]
    assert mid[0] > 0.5 and abs(mid[1]) < 1e-9 and abs(mid[2]) < 1e-9
    with pytest.raises(DataError):
        A.map_channels_montage(data[:2], ["X1", "X2"], 4)


def test_make_windows_and_normalize():
    data = np.arange(2 * 10, dtype=float).reshape(2, 10)
    w = A.make_windows(data, 4, 3)
    assert w.shape == (3, 2, 4)  # starts 0, 3, 6
    np.testing.assert_array_equal(w[1, 0], [3, 4, 5, 6])
    assert A.make_windows(data, 11).shape == (0, 2, 11)
    n = A.normalize_windows(w)
    np.testing.assert_allclose(n.mean(-1), 0, atol=1e-6)
    np.testing.assert_allclose(n.std(-1), 1, atol=1e-6)
    flat = np.zeros((1, 2, 8))
    flat[0, 1] = np.arange(8)
    nf = A.normalize_windows(flat)
    assert np.all(nf[0, 0] == 0) and np.isfinite(nf).all()
    assert A.normalize_windows(w, "none").dtype == np.float32


def test_binned_means_average_equal_time_bins_per_channel():
    x = np.stack([np.arange(9.0), 10 + np.arange(9.0)])[None]  # [N=1, C=2, T=9]
    out = T.binned_means(x, 4)  # the 9th sample is left out: four bins of two samples
    assert out.tolist() == [[0.5, 2.5, 4.5, 6.5, 10.5, 12.5, 14.5, 16.5]]  # channel-major
    with pytest.raises(ValueError):
        T.binned_means(x, 10)


def test_sine_keeps_its_frequency_through_resampling():
    sfreq = 128.0
    t = np.arange(int(8 * sfreq)) / sfreq
    raw = _raw([20 * np.sin(2 * np.pi * 10 * t)], sfreq)
    spec = T.InputSpec(n_chans=2, n_times=256, sfreq=500.0, l_freq=1.0, h_freq=None)
    out = T.standardize_raw(raw, spec)
    assert out.shape == (2, int(8 * 500))
    assert _peak_hz(out[0, 500:-500], 500.0) == pytest.approx(10.0, abs=0.3)
    # amplitude in microvolts survives
    assert _amp_at(out[0, 500:-500], 500.0, 10.0) == pytest.approx(20.0, rel=0.05)
    # paper default: 128 Hz up to 1163.6 Hz
    out = T.standardize_raw(raw, T.InputSpec(n_chans=1))
    assert out.shape[1] == pytest.approx(8 * 512 / 0.44, abs=2)
    assert _peak_hz(out[0], 512 / 0.44) == pytest.approx(10.0, abs=0.3)


def test_band_pass_and_notch_remove_what_they_should():
    sfreq = 1000.0
    t = np.arange(int(10 * sfreq)) / sfreq
    sig = 10 * np.sin(2 * np.pi * 2 * t) + 10 * np.sin(2 * np.pi * 20 * t) + 10 * np.sin(2 * np.pi * 200 * t) \
        + 10 * np.sin(2 * np.pi * 50 * t)
    raw = _raw([sig], sfreq)
    spec = T.InputSpec(n_chans=1, n_times=100, sfreq=sfreq, l_freq=5.0, h_freq=95.0, notch=50.0)
    out = T.standardize_raw(raw, spec)[0, 2000:-2000]
    assert _amp_at(out, sfreq, 20) == pytest.approx(10, rel=0.05)  # in band: kept
    assert _amp_at(out, sfreq, 2) < 0.5  # below 5 Hz: gone
    assert _amp_at(out, sfreq, 200) < 0.5  # above 95 Hz: gone
    assert _amp_at(out, sfreq, 50) < 0.5  # notched
    # without the notch the 50 Hz line stays
    out = T.standardize_raw(raw, T.InputSpec(n_chans=1, n_times=100, sfreq=sfreq))[0, 2000:-2000]
    assert _amp_at(out, sfreq, 50) == pytest.approx(10, rel=0.05)


def test_h_freq_above_nyquist_is_skipped_and_logged(caplog):
    raw = _raw(np.random.default_rng(0).standard_normal((2, 1280)), 128.0)
    with caplog.at_level("DEBUG", logger="dreamdiffusion.data.transforms"):
        out = T.standardize_raw(raw, T.InputSpec(n_chans=2, sfreq=128.0, h_freq=95.0))
    assert out.shape == (2, 1280)
    assert "Nyquist" in caplog.text
    with pytest.raises(DataError, match="too low"):
        T.standardize_raw(_raw(np.ones((1, 100)), 8.0), T.InputSpec(n_chans=1, sfreq=8.0))


def test_a_headsets_10_05_names_are_placed_by_position_on_a_cap_of_other_names():
    """A model whose channels are BioSemi-128's (the built-in benchmark's) reads a 14-channel headset named in 10-05:
    each headset channel lands on the cap channel at its position, not on the 128 in file order."""
    cap = mne.channels.make_standard_montage("biosemi128").ch_names
    emotiv = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4"]
    m = A.map_channels_montage(np.eye(len(emotiv)), emotiv, cap, "biosemi128")
    assert m.shape == (128, 14) and np.allclose(m.sum(axis=1), 1.0, atol=1e-6)  # a spline reproduces a constant
    cap_dirs, std_dirs = M.montage_directions("biosemi128"), M.montage_directions("standard_1005")
    for ch in ("O1", "T7", "F3"):
        row = int(np.argmin([np.linalg.norm(cap_dirs[c.lower()] - std_dirs[ch.lower()]) for c in cap]))
        assert emotiv[int(np.argmax(m[row]))] == ch  # the cap channel at O1's place reads O1 most
    # A cap's own names stay its own, even where 10-05 has the same name (BioSemi's A1 is the vertex, 10-20's the ear).
    assert A.source_montage(cap[:40], "biosemi128") == "biosemi128"
    assert A.source_montage(["Fz", "Cz", "Pz", "O1", "O2", "A1", "A2"], "biosemi128") == "standard_1005"
    own = A.map_channels_montage(np.eye(40), cap[:40], cap[:3], "biosemi128")
    np.testing.assert_allclose(own, np.eye(40)[:3])  # targets that are recorded channels: those channels
    with pytest.raises(DataError, match="'biosemi128' or 'standard_1005'"):
        A.map_channels_montage(np.eye(2), ["X1", "X2"], cap, "biosemi128")


def test_template_directions_are_taken_from_the_templates_own_centre():
    """10-05's positions sit 1.6 cm behind their frame's origin; from the fitted centre T7 and T8 lie in Cz's coronal
    plane, as 10-20 defines them (from the origin they lean 11 degrees back), and BioSemi's A1 is the vertex."""
    d = M.montage_directions("standard_1005")
    assert abs(d["t7"][1]) < 0.03 and abs(d["t8"][1]) < 0.03 and d["t7"][0] < -0.95 < 0.95 < d["t8"][0]
    assert abs(M.unit_positions(M.make_montage("standard_1005"))["t7"][1]) > 0.15  # what the centre corrects
    assert d["cz"][2] > 0.99 and abs(np.linalg.norm(d["oz"]) - 1) < 1e-9
    assert M.montage_directions("biosemi128")["a1"][2] > 0.999

def test_a_cap_name_measured_elsewhere_is_placed_by_its_position():
    """10-20's ear electrodes A1 / A2 carry names that BioSemi-128 gives the vertex and its neighbour: with measured
    positions they are placed where they were measured, not where the name says; a BioSemi recording keeps its names."""
    names = ["Fz", "Cz", "Pz", "O1", "O2", "C3", "C4", "A1", "A2"]
    raw = mne.io.RawArray(np.zeros((len(names), 10)), mne.create_info(names, 100.0, "eeg"), verbose="error")
    raw.set_montage("standard_1005", verbose="error")
    placed = dict(zip(names, M.snap_to_standard_names(raw, "biosemi128").ch_names))
    spec = T.InputSpec(n_chans=128, sfreq=100.0, channel_mapping="montage", montage="biosemi128",
                       target_channels=mne.channels.make_standard_montage("biosemi128").ch_names)
    record = T.recording_channels(raw, spec)  # what a manifest says: the names read, and who was renamed to what
    assert record["renamed_by_position"] == placed and record["names"] == [placed[n] for n in names]
    cap = M.montage_directions("biosemi128")
    for ear in ("A1", "A2"):
        assert cap[placed[ear].lower()][2] < 0.2  # low on the head, beside the ears, not at the top
    assert cap[placed["Cz"].lower()][2] > 0.95
    biosemi = mne.channels.make_standard_montage("biosemi128")
    own = mne.io.RawArray(np.zeros((128, 10)), mne.create_info(biosemi.ch_names, 100.0, "eeg"), verbose="error")
    own.set_montage(biosemi, verbose="error")
    assert M.snap_to_standard_names(own, "biosemi128") is own

def test_repeat_mapping_of_another_channel_count_is_said_once(caplog):
    spec = T.InputSpec(n_chans=8, sfreq=256.0, channel_mapping="repeat")
    T._TILING_LOGGED.discard((3, 8))
    with caplog.at_level("WARNING", logger="dreamdiffusion.data.transforms"):
        for _ in range(3):
            m = T.channel_map(["Fz", "Cz", "Pz"], spec, "cap.edf")
        T.channel_map(["Fz", "Cz", "Pz", "Oz", "O1", "O2", "C3", "C4"], spec, "full.edf")  # same count: nothing
    said = [r.getMessage() for r in caplog.records if "in file order" in r.getMessage()]
    assert len(said) == 1 and "cap.edf: 3 EEG channels tiled" in said[0] and "'montage'" in said[0]
    assert m.argmax(axis=1).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]  # and it still tiles, as asked
    _, record = T.channel_plan(["Fz", "Cz", "Pz"], spec)
    assert record == {"requested": "repeat", "recorded_channels": 3, "model_channels": 8, "used": "repeat"}
    _, fell = T.channel_plan(["Fz", "Cz"], T.InputSpec(n_chans=8, sfreq=256.0, channel_mapping="montage"))
    assert fell["used"] == "repeat" and "2 of 2 channels have a position" in fell["fallback"]
    assert "at least 3" in fell["fallback"]


def test_standardize_picks_eeg_only_and_maps_channels():
    info = mne.create_info(["Fz", "Cz", "STI 014", "EOG1"], 256.0, ["eeg", "eeg", "stim", "eog"])
    rng = np.random.default_rng(0)
    raw = mne.io.RawArray(rng.standard_normal((4, 2560)) * 1e-5, info, verbose="error")
    out = T.standardize_raw(raw, T.InputSpec(n_chans=5, sfreq=256.0))
    assert out.shape == (5, 2560)
    np.testing.assert_array_equal(out[0], out[2])  # Fz, Cz, Fz, Cz, Fz
    np.testing.assert_array_equal(out[1], out[3])
    assert not np.allclose(out[0], out[1])
    info = mne.create_info(["STI 014"], 256.0, ["stim"])
    with pytest.raises(DataError, match="no good EEG"):
        T.standardize_raw(mne.io.RawArray(np.zeros((1, 100)), info, verbose="error"), T.InputSpec())


def test_windows_from_raw_shapes_and_normalisation():
    raw = _raw(np.random.default_rng(0).standard_normal((3, 128 * 10)) * 30, 128.0)
    spec = T.InputSpec(n_chans=4, n_times=128, sfreq=128.0, window_stride=64, l_freq=1.0)
    w = T.windows_from_raw(raw, spec)
    assert w.shape == ((1280 - 128) // 64 + 1, 4, 128)
    np.testing.assert_allclose(w.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(w.std(-1), 1, atol=1e-4)


def test_window_at_matches_the_full_recording_away_from_edges():
    sfreq = 250.0
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, int(30 * sfreq))) * 20
    raw = _raw(data, sfreq)
    spec = T.InputSpec(n_chans=3, n_times=110, sfreq=250.0, l_freq=5.0, h_freq=40.0)
    full = T.standardize_raw(raw, spec)
    onset = 12.0
    ref = A.normalize_windows(full[None, :, 3000:3110])[0]
    got = T.window_at(raw, onset, spec)
    assert got.shape == (3, 110)
    # cropping with 2 s padding leaves the window essentially untouched by filter edges
    np.testing.assert_allclose(got, ref, atol=0.05)
    # an array with its rate is treated like a raw recording
    got2 = T.window_at(data, onset, spec, sfreq=sfreq)
    np.testing.assert_allclose(got2, got, atol=1e-4)
    # an already standardised array is only cut and normalised
    got3 = T.window_at(full, onset, spec)
    np.testing.assert_allclose(got3, ref, atol=1e-5)
    with pytest.raises(DataError, match="runs past"):
        T.window_at(raw, 29.9, spec)
    with pytest.raises(DataError):
        T.window_at(raw, -1.0, spec)


def test_subject_means_and_centering_on_known_windows():
    """Means per subject over the given rows only, read in chunks; centering subtracts each window's own
    subject's mean; a subject with no mean is one DataError."""
    rng = np.random.default_rng(0)
    w = rng.normal(size=(10, 2, 3)).astype(np.float32)
    subjects = np.array([0, 1, 0, 1, 2, 0, 1, 2, 0, 1])
    rows = [0, 1, 2, 3, 4, 5]
    means = A.subject_means(w, subjects, rows, chunk=4)
    assert set(means) == {0, 1, 2}
    np.testing.assert_allclose(means[0], w[[0, 2, 5]].mean(0), atol=1e-6)
    np.testing.assert_allclose(means[1], w[[1, 3]].mean(0), atol=1e-6)
    np.testing.assert_allclose(means[2], w[4], atol=1e-6)
    out = A.center_by_subject(w.copy(), subjects, means)
    for i, k in enumerate(subjects):
        np.testing.assert_allclose(out[i], w[i] - means[int(k)], atol=1e-6)
    with pytest.raises(DataError, match=r"subject\(s\) \[3\]"):
        A.center_by_subject(w[:2].copy(), [0, 3], means)
    with pytest.raises(ValueError):
        A.subject_means(w, subjects[:5])


def test_preprocessing_record_is_the_spec_and_the_dataset_name():
    """A model's ``preprocessing.json``: the dataset's InputSpec with its name, or only the name without a spec;
    the record round-trips through InputSpec (the name aside)."""
    class WithSpec:
        spec = T.InputSpec(n_chans=4, n_times=64, sfreq=128.0, channel_mapping="montage", montage="standard_1005",
                           target_channels=["O1", "Oz", "O2", "Pz"])

    rec = T.preprocessing_record(WithSpec(), "synthetic")
    assert rec["dataset"] == "synthetic" and rec["target_channels"] == ["O1", "Oz", "O2", "Pz"]
    assert T.InputSpec.from_dict({k: v for k, v in rec.items() if k != "dataset"}) == WithSpec.spec
    assert T.preprocessing_record(object(), "things_eeg2") == {"dataset": "things_eeg2"}
