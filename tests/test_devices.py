"""Headset layouts, montages, and mapping a few channels onto the model's cap by position."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from app_fixtures import EMOTIV
from dreamdiffusion.app import devices
from dreamdiffusion.core.errors import ConfigError, EEGReadError


def test_layouts_are_real_10_05_positions():
    template = {n.lower() for n in mne.channels.make_standard_montage(devices.standard_montage_name()).ch_names}
    for layout in devices.LAYOUTS.values():
        assert len(set(c.lower() for c in layout.ch_names)) == layout.n_chans, layout.name
        assert all(c.lower() in template for c in layout.ch_names), layout.name
    assert devices.get_layout("Emotiv-EPOC").ch_names == tuple(EMOTIV)
    sizes = {name: lay.n_chans for name, lay in devices.LAYOUTS.items()}
    assert sizes["openbci-cyton"] == 8 and sizes["openbci-cyton-daisy"] == 16 and sizes["10-20-32"] == 32
    assert sizes["muse"] == 4
    with pytest.raises(ConfigError, match="emotiv-epoc"):
        devices.get_layout("neurosky")


def test_detect_layout_ignores_order_and_case():
    assert devices.detect_layout([c.lower() for c in reversed(EMOTIV)]).name == "emotiv-epoc"
    assert devices.detect_layout(EMOTIV[:-1]) is None


def test_resolve_montage_names_files_and_errors(tmp_path):
    assert "Cz" in devices.resolve_montage("standard_1020").ch_names
    assert devices.resolve_montage(None) is None and devices.resolve_montage("auto") is None
    with pytest.raises(ConfigError, match="unknown montage"):
        devices.resolve_montage("no_such_cap")
    with pytest.raises(ConfigError, match="not found"):
        devices.resolve_montage(tmp_path / "missing.sfp")
    bad = tmp_path / "bad.elc"
    bad.write_text("this is not an electrode file\n")
    with pytest.raises(ConfigError, match="cannot read electrode positions"):
        devices.resolve_montage(bad)


def test_apply_montage_names_unknown_channels(spkit_raw):
    raw = spkit_raw
    raw.rename_channels({"AF3": "Ch1"})
    with pytest.raises(EEGReadError, match="Ch1"):
        devices.apply_montage(raw, "standard_1020", source="rec.fif")


def test_snap_keeps_standard_names_and_renames_foreign_ones(spkit_raw):
    raw = spkit_raw
    assert devices.snap_to_standard_names(raw) is raw  # already 10-05 names: untouched
    cap = mne.channels.make_standard_montage("biosemi32")
    data = np.zeros((32, 10))
    b = mne.io.RawArray(data, mne.create_info(cap.ch_names, 100.0, "eeg"), verbose="error").set_montage(cap)
    snapped = devices.snap_to_standard_names(b)
    assert len(set(snapped.ch_names)) == 32
    # BioSemi-32 is a 10-20 cap under other names: most channels land on the same-named 10-20 positions.
    overlap = set(snapped.ch_names) & set(devices.get_layout("10-20-32").ch_names)
    assert len(overlap) >= 26


def _smooth_field(names: list[str], montage: str, n_times: int = 64, seed: int = 0) -> np.ndarray:
    """Scalp data made of a few low-order spatial patterns (what EEG volume conduction gives)."""
    pos = devices._unit_positions(mne.channels.make_standard_montage(montage))
    xyz = np.array([pos[n.lower()] for n in names])
    rng = np.random.default_rng(seed)
    basis = np.column_stack([xyz, xyz[:, 0] * xyz[:, 1], xyz[:, 2] ** 2])  # [C, 5]
    return basis @ rng.standard_normal((5, n_times))


def test_simulated_headsets_lose_accuracy_as_channels_drop():
    names = mne.channels.make_standard_montage("biosemi128").ch_names
    data = _smooth_field(names, "biosemi128")
    errors = {}
    layouts = ("10-20-32", "10-20-16", "emotiv-epoc", "10-20-8", "muse")
    for layout in layouts:
        rec = devices.simulate_headset(data, names, devices.get_layout(layout), montage="biosemi128")
        assert rec.shape == data.shape and np.isfinite(rec).all()
        kept = devices.nearest_channels(devices.get_layout(layout).ch_names, names, "biosemi128")
        idx = [names.index(c) for c in kept]
        assert np.allclose(rec[idx], data[idx], atol=1e-6 * np.abs(data).max())  # exact on the electrodes
        errors[layout] = np.linalg.norm(rec - data) / np.linalg.norm(data)
    assert errors["10-20-32"] < 0.05  # a smooth field is well recovered from 32 electrodes
    assert errors["10-20-16"] < errors["emotiv-epoc"] * 1.5
    assert [errors[k] for k in ("10-20-32", "10-20-16", "10-20-8", "muse")] == sorted(
        errors[k] for k in ("10-20-32", "10-20-16", "10-20-8", "muse"))
    assert errors["muse"] > 0.5  # 4 electrodes at the rim cannot describe the whole scalp
