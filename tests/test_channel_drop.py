"""benchmarks/channel_drop.py's recording path: a headset's channels, named as its file names them, reach the
model's channels through the same mapping a recording takes."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from dreamdiffusion.app.devices import get_layout, nearest_channels
from dreamdiffusion.data.synthetic import MONTAGE, benchmark_input_spec, montage_positions

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "channel_drop.py"


@pytest.fixture(scope="module")
def channel_drop():
    spec = importlib.util.spec_from_file_location("channel_drop", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["channel_drop"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("channel_drop", None)


def test_recording_matrix_reads_only_the_headsets_channels_each_at_its_place(channel_drop):
    cap, _ = montage_positions()
    spec = benchmark_input_spec({"n_chans": 128, "n_times": 512, "sfreq": 512 / 0.44, "ch_names": cap})
    layout = get_layout("emotiv-epoc")
    w = channel_drop.recording_matrix(cap, layout, spec)
    kept = nearest_channels(list(layout.ch_names), cap, MONTAGE)
    used = np.flatnonzero(np.abs(w).sum(axis=0) > 0)
    assert w.shape == (128, 128) and sorted(used) == sorted(cap.index(c) for c in kept)  # nothing else is read
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-6)  # a constant field stays constant
    for name, cap_channel in zip(layout.ch_names, kept):  # the cap channel at each electrode reads it most
        assert int(np.argmax(w[cap.index(cap_channel)])) == cap.index(cap_channel), name
