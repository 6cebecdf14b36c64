"""DreamDiffusionPipeline and generate_images (pipeline.py, generation.py)."""

import json

import numpy as np
import pytest
import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models import hub
from dreamdiffusion.models.conditioner import EEGConditioner
from dreamdiffusion.pipeline import DreamDiffusionPipeline, make_scheduler
from stageb_helpers import CLIP_DIM, CROSS, N_CHANS, N_TIMES  # parts: conftest.py


@pytest.fixture(scope="module")
def pipe(parts):
    base = hub.load_base(str(parts / "base"))
    cond = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM, hub.unet_time_embed_dim(base.unet))
    p = DreamDiffusionPipeline(base.unet, base.vae, make_scheduler("dpm", base.scheduler_config), cond,
                               {"l_freq": 5.0, "h_freq": 95.0})
    p.set_progress_bar_config(disable=True)
    return p


def _draw(p, eeg, **kw):
    return p(eeg, num_images_per_eeg=2, num_inference_steps=3, guidance_scale=2.0,
             generator=torch.Generator().manual_seed(7), output_type="np", **kw).images


def test_save_load_identical_images_safetensors_only(pipe, tmp_path):
    eeg = torch.randn(2, N_CHANS, N_TIMES)
    before = _draw(pipe, eeg)
    assert before.shape == (4, 16, 16, 3) and np.isfinite(before).all()
    pipe.save_pretrained(tmp_path / "p")
    files = [f for f in (tmp_path / "p").rglob("*") if f.is_file()]
    assert files and all(f.suffix in (".json", ".safetensors") for f in files), files
    spec = json.loads((tmp_path / "p" / "preprocessing.json").read_text())
    assert spec["n_chans"] == N_CHANS and spec["n_times"] == N_TIMES and spec["l_freq"] == 5.0
    loaded = DreamDiffusionPipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.eeg_conditioner, EEGConditioner)
    np.testing.assert_array_equal(_draw(loaded, eeg), before)
    assert loaded.input_spec().n_chans == N_CHANS
    cond, clip = loaded.encode_eeg(eeg)
    assert cond.shape == (2, 77, CROSS) and clip.shape == (2, CLIP_DIM)


def test_guidance_schedulers_and_grouping(pipe):
    eeg = torch.randn(1, N_CHANS, N_TIMES)
    guided = _draw(pipe, eeg)
    plain = pipe(eeg, num_images_per_eeg=2, num_inference_steps=3, guidance_scale=1.0,
                 generator=torch.Generator().manual_seed(7), output_type="np").images
    assert not np.allclose(guided, plain)  # the null context takes part when guidance > 1
    for name in ("pndm", "ddim", "euler"):
        sched = make_scheduler(name, pipe.scheduler.config)
        p2 = DreamDiffusionPipeline(pipe.unet, pipe.vae, sched, pipe.eeg_conditioner)
        p2.set_progress_bar_config(disable=True)
        out = p2(eeg[0], num_images_per_eeg=1, num_inference_steps=2, output_type="pt").images
        assert out.shape == (1, 3, 16, 16) and torch.isfinite(out).all()
    seen = []

    def callback(p, i, t, kw):
        seen.append(i)
        return {"latents": kw["latents"] * 0}  # replacing the latents must take effect

    zero = pipe(eeg, num_images_per_eeg=1, num_inference_steps=3, output_type="latent",
                callback_on_step_end=callback).images
    assert seen == [0, 1, 2] and not zero.any()
    with pytest.raises(ConfigError, match="unknown scheduler"):
        make_scheduler("plms2", pipe.scheduler.config)
    # images are grouped by EEG: per-image generators make row j of EEG i independent of the batch
    two = torch.randn(2, N_CHANS, N_TIMES)
    gens = lambda: [torch.Generator().manual_seed(s) for s in (1, 2, 3, 4)]
    both = pipe(two, num_images_per_eeg=2, num_inference_steps=2, generator=gens(), output_type="np").images
    first = pipe(two[:1], num_images_per_eeg=2, num_inference_steps=2, generator=gens()[:2], output_type="np").images
    np.testing.assert_allclose(both[:2], first, atol=1e-5)


def test_bad_eeg_is_refused(pipe):
    with pytest.raises(ConfigError, match=f"expects {N_CHANS} EEG channels, found 3"):
        pipe(torch.randn(1, 3, N_TIMES), num_inference_steps=1)
    bad = torch.randn(1, N_CHANS, N_TIMES)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ConfigError, match="NaN"):
        pipe(bad, num_inference_steps=1)
    with pytest.raises(ConfigError, match="not a DreamDiffusion pipeline"):
        DreamDiffusionPipeline.from_pretrained(__import__("pathlib").Path(__file__).parent)


def test_generate_images_files_and_determinism(pipe, tmp_path):
    from PIL import Image

    from dreamdiffusion.generation import EEGSource, GenerateConfig, generate_images

    g = torch.Generator().manual_seed(3)
    sources = [EEGSource(torch.randn(N_CHANS, N_TIMES, generator=g), {"file": f"r{i}.edf", "onset_s": 0.0},
                         image=Image.new("RGB", (20, 20), (200, 0, 0))) for i in range(3)]
    m1 = generate_images(GenerateConfig(model="mem", output=str(tmp_path / "a"), num_images=2, steps=2, seed=5,
                                        batch_size=2), sources, pipe=pipe)
    m2 = generate_images(GenerateConfig(model="mem", output=str(tmp_path / "b"), num_images=2, steps=2, seed=5,
                                        batch_size=3), sources, pipe=pipe)
    assert [e["images"] for e in m1["items"]] == [["images/%04d_%d.png" % (i, j) for j in range(2)] for i in range(3)]
    assert [e["images"] for e in m2["items"]] == [e["images"] for e in m1["items"]]  # batch size: same files
    for e in m1["items"]:
        for name in e["images"]:
            a = np.asarray(Image.open(tmp_path / "a" / name))
            b = np.asarray(Image.open(tmp_path / "b" / name))
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # batching does not change an image
    grid = Image.open(tmp_path / "a" / "grid.png")
    assert grid.size == (3 * 16, 3 * 16)  # truth + 2 samples per row, 3 rows
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["steps"] == 2 and manifest["items"][1]["eeg"]["file"] == "r1.edf"
    assert not [p for p in (tmp_path / "a").rglob("*") if ".tmp" in p.name]


def test_pipeline_loads_with_nothing_else_imported():
    """A user's script that imports only the pipeline module loads a saved pipeline (diffusers needs the module of
    the eeg_conditioner/ component imported; it never imports it itself)."""
    import os
    import subprocess
    import sys

    code = ("from dreamdiffusion.models import builtin; from dreamdiffusion.pipeline import DreamDiffusionPipeline; "
            "p = DreamDiffusionPipeline.from_pretrained(builtin.default_pipeline_path()); "
            "print(type(p.eeg_conditioner).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0 and out.stdout.strip().endswith("EEGConditioner"), out.stderr[-2000:]
