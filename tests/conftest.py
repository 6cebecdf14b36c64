"""Shared fixtures. Tests never touch the network."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# after the environment above: these libraries read it when imported
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


# The fixtures below build what several test modules share, once. Heavy libraries (diffusers, MNE, the app) are
# imported inside them, not here: collection imports this file and every test module, and should take seconds.

@pytest.fixture(scope="session")
def parts(tmp_path_factory):
    """The tiny Stable Diffusion, CLIP and encoders of the Stage B tests, built once per test run.

    ``base/`` (UNet + VAE + scheduler), ``clip/``, ``enc/`` (8 channels x 64 samples), ``enc128/`` (128 x 512, the
    folder dataset's default model input) and ``data/`` (a folder dataset of FIF recordings + images). Shared by
    every test that takes it: read it, never write into it (copy a folder first).
    """
    from stageb_helpers import make_base, make_clip, make_encoder, make_folder_dataset

    d = tmp_path_factory.mktemp("stageb")
    make_base(d / "base")
    make_clip(d / "clip")
    make_encoder(d / "enc")
    make_encoder(d / "enc128", n_chans=128, n_times=512)
    make_folder_dataset(d / "data")
    return d


@pytest.fixture(scope="session")
def spkit_recording():
    from dreamdiffusion.data.io import sample_raw  # arrays-only unpickler: never plain pickle.load

    return sample_raw()


@pytest.fixture
def spkit_raw(spkit_recording):
    """spkit's real 14-channel Emotiv EPOC recording (16 s at 128 Hz, standard_1020 positions) as MNE Raw,
    read once per run through the library's own reader; each test gets its own copy to change."""
    return spkit_recording.copy()


@pytest.fixture
def fresh_accelerate_state():
    """Accelerate keeps one process-wide state: each training run in a test starts from, and leaves, a clean one."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture
def fresh_pairs_cache():
    """The paired datasets' in-process file cache, empty before and after the test."""
    from dreamdiffusion.data import pairs

    pairs.clear_cache()
    yield
    pairs.clear_cache()


@pytest.fixture
def cvpr(tmp_path):
    """A small EEGCVPR40 in the authors' format (``pairs_fixtures.write_cvpr40``), the test's own to change."""
    from pairs_fixtures import write_cvpr40

    return write_cvpr40(tmp_path / "cvpr")


@pytest.fixture(scope="session")
def cvpr_shared(tmp_path_factory):
    """The same EEGCVPR40, built once per run for tests that only read it (hypothesis runs many inputs on it)."""
    from pairs_fixtures import write_cvpr40

    return write_cvpr40(tmp_path_factory.mktemp("cvpr") / "c")


@pytest.fixture(scope="session")
def tiny_pipeline_folder(tmp_path_factory):
    """A tiny real trained-shape pipeline folder (128 x 512 input), saved once per run; read-only."""
    from app_fixtures import tiny_pipeline_dir

    return tiny_pipeline_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def engine(tiny_pipeline_folder):
    """The app's engine on ``tiny_pipeline_folder`` (one per test module)."""
    from dreamdiffusion.app.engine import Engine

    return Engine.from_pretrained(tiny_pipeline_folder)


@pytest.fixture
def benchmark_script():
    """``load(name)``: ``benchmarks/<name>.py`` as a module (the scripts are not a package). It is registered in
    ``sys.modules`` while the test runs, because the scripts' dataclasses look their module up there."""
    import importlib.util
    import sys
    from pathlib import Path

    loaded = []

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(f"{name}_for_test", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        loaded.append(spec.name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)
