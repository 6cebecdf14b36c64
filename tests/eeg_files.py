"""Real EEG files for tests, written with MNE's own writers.

Sources (both ship inside installed packages):
- spkit's 14-channel Emotiv EPOC recording (16 s at 128 Hz): conftest's ``spkit_raw`` fixture
  (``dreamdiffusion.data.io.sample_raw``, an arrays-only unpickler);
- pyedflib's 1-channel clinical-looking EDF ``tests/data/test_subsecond.edf`` (698 s at 128 Hz).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mne
import numpy as np
import pytest

FORMATS = ("fif", "vhdr", "edf", "set")


def pyedflib_edf() -> Path:
    spec = importlib.util.find_spec("pyedflib")
    if spec is None:
        pytest.skip("pyedflib is not installed")
    path = Path(spec.origin).parent / "tests" / "data" / "test_subsecond.edf"
    if not path.is_file():
        pytest.skip(f"{path} is missing from this pyedflib")
    return path


def write_raw(raw: mne.io.BaseRaw, folder: Path, name: str, fmt: str) -> Path:
    """Write ``raw`` as ``folder/name.<fmt>`` with MNE (``raw.save`` for FIF, else export_raw)."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "fif":
        path = folder / f"{name}_raw.fif"
        raw.save(path, overwrite=True, verbose="error")
    else:
        path = folder / f"{name}.{fmt}"
        mne.export.export_raw(path, raw, fmt={"vhdr": "brainvision", "edf": "edf", "set": "eeglab"}[fmt],
                              overwrite=True, verbose="error")
    return path


def write_spkit(raw: mne.io.BaseRaw, folder: Path, fmt: str, name: str = "spkit") -> Path:
    """The spkit recording (conftest's ``spkit_raw``) written as ``folder/name.<fmt>``."""
    return write_raw(raw, folder, name, fmt)


def write_npy(folder: Path, data: np.ndarray, name: str = "rec") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npy"
    np.save(path, data)
    return path
