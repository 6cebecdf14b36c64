"""The pipeline's fast path (channels-last, torch.compile'd UNet) draws the same images as the plain path.

Tolerance: images are in [0, 1]; the fast path may differ from the plain one by at most ``TOL`` per pixel for
the same seed (channels-last convolutions and compiled kernels sum in another order; on this CPU the measured
difference is below 1e-6). The inductor variant compiles C++ kernels (about 40 s on a 2-core machine), so it
runs only with ``DD_TEST_INDUCTOR=1`` and a C++ compiler; the ``eager`` backend checks the same dynamo graph
capture (hooks, guards, recompiles) in seconds.
"""

import os
import shutil

import numpy as np
import pytest
import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models import hub
from dreamdiffusion.models.conditioner import EEGConditioner
from dreamdiffusion.pipeline import DreamDiffusionPipeline, make_scheduler
from stageb_helpers import CLIP_DIM, CROSS, N_CHANS, N_TIMES  # parts: conftest.py

TOL = 1e-4


def _pipe(d, scheduler="dpm"):
    """A fresh pipeline with the same weights each time (the mapper is seeded); time conditioning on."""
    torch.manual_seed(0)
    base = hub.load_base(str(d / "base"))
    cond = EEGConditioner.from_encoder(d / "enc", CROSS, CLIP_DIM, hub.unet_time_embed_dim(base.unet))
    assert cond.time_cond is not None  # the forward hook on the UNet's time embedding is exercised
    p = DreamDiffusionPipeline(base.unet, base.vae, make_scheduler(scheduler, base.scheduler_config), cond)
    p.set_progress_bar_config(disable=True)
    return p


def _draw(p, eeg, guidance=2.0):
    return p(eeg, num_images_per_eeg=2, num_inference_steps=3, guidance_scale=guidance,
             generator=torch.Generator().manual_seed(7), output_type="np").images


def _eegs():
    g = torch.Generator().manual_seed(3)
    return [torch.randn(2, N_CHANS, N_TIMES, generator=g), 3 * torch.randn(2, N_CHANS, N_TIMES, generator=g)]


def test_channels_last_without_compile_matches_plain(parts):
    eeg = _eegs()[0]
    plain = _draw(_pipe(parts), eeg)
    fast = _pipe(parts).enable_fast_path(compile="none")
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.vae.decoder.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast.fast_path == {"compile": "none", "channels_last": True, "backend": "inductor"}
    out = _draw(fast, eeg)
    assert np.isfinite(out).all() and np.abs(out - plain).max() <= TOL


def _check_compiled(parts, backend, mode):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eegs = _eegs()
    plain = [_draw(_pipe(parts), e) for e in eegs]
    fast = _pipe(parts).enable_fast_path(compile=mode, backend=backend)
    try:
        # two different EEGs: the time-conditioning hook's input must not be baked into the compiled graph
        outs = [_draw(fast, e) for e in eegs]
        outs.append(_draw(fast, eegs[0]))
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1  # dynamo really captured the UNet
    finally:
        torch._dynamo.reset()
    assert np.abs(plain[0] - plain[1]).max() > 100 * TOL  # the two EEGs give different images
    for out, ref in zip(outs, plain + plain[:1]):
        assert np.abs(out - ref).max() <= TOL


def test_compiled_unet_eager_backend_matches_plain(parts):
    _check_compiled(parts, "eager", "default")


@pytest.mark.skipif(os.environ.get("DD_TEST_INDUCTOR") != "1", reason="inductor compile takes ~40 s on CPU: "
                    "set DD_TEST_INDUCTOR=1")
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                    reason="inductor on CPU needs a C++ compiler")
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_unet_inductor_matches_plain(parts, mode):
    _check_compiled(parts, "inductor", mode)


def test_fast_path_modes_are_checked(parts):
    p = _pipe(parts)
    with pytest.raises(ConfigError, match="compile must be one of"):
        p.enable_fast_path(compile="fastest")
    p.enable_fast_path(compile=True, backend="eager")
    assert p.fast_path["compile"] == "default"
    p.enable_fast_path(compile="default", backend="eager")  # the same mode again: nothing to do
    with pytest.raises(ConfigError, match="already compiled"):
        p.enable_fast_path(compile="max-autotune")
    torch._dynamo.reset()


def test_generate_compile_flag_is_checked_before_loading(tmp_path, capsys):
    from dreamdiffusion.cli import main

    code = main(["generate", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "o"),
                 "--eeg-file", str(tmp_path / "x.npy"), "--compile", "turbo"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.strip() == "error: --compile must be one of none, default, reduce-overhead, max-autotune, got 'turbo'"


def test_generate_images_with_the_fast_path_writes_the_same_pngs(parts, tmp_path):
    """generate_images on a compiled pipeline (eager backend here): same PNGs as the plain pipeline, and the
    manifest names the compile mode."""
    from PIL import Image

    from dreamdiffusion.generation import EEGSource, GenerateConfig, generate_images

    g = torch.Generator().manual_seed(4)
    sources = [EEGSource(torch.randn(N_CHANS, N_TIMES, generator=g), {"file": f"r{i}.edf", "onset_s": 0.0})
               for i in range(2)]
    torch._dynamo.reset()
    try:
        plain = generate_images(GenerateConfig(model="mem", output=str(tmp_path / "plain"), num_images=2, steps=2,
                                               seed=1), sources, pipe=_pipe(parts))
        fast_pipe = _pipe(parts).enable_fast_path("reduce-overhead", backend="eager")
        fast = generate_images(GenerateConfig(model="mem", output=str(tmp_path / "fast"), num_images=2, steps=2,
                                              seed=1, compile="reduce-overhead"), sources, pipe=fast_pipe)
    finally:
        torch._dynamo.reset()
    assert plain["compile"] == "none" and fast["compile"] == "reduce-overhead"
    for e in plain["items"]:
        for name in e["images"]:
            a = np.asarray(Image.open(tmp_path / "plain" / name)).astype(int)
            b = np.asarray(Image.open(tmp_path / "fast" / name)).astype(int)
            assert np.abs(a - b).max() <= 1  # 8-bit PNGs: at most one step of rounding
