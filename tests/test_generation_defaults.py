"""A pipeline's recommended generation settings (generation.json) and who uses them: generate, the app, stream."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from app_fixtures import tiny_pipeline_dir
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.generation import resolve_generation_settings
from dreamdiffusion.pipeline import (
    GENERATION_FILE,
    DreamDiffusionPipeline,
    read_generation_defaults,
    write_generation_defaults,
)

# A small input keeps the tiny pipeline fast; 16 channels at 128 Hz, 64 samples per window.
N_CHANS, N_TIMES, SFREQ = 16, 64, 128.0


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny real pipeline folder without generation.json (tests copy it before adding one)."""
    return tiny_pipeline_dir(tmp_path_factory.mktemp("model"), n_chans=N_CHANS, n_times=N_TIMES, sfreq=SFREQ,
                             channel_mapping="repeat")


def _copy(model_dir, tmp_path):
    dst = tmp_path / "pipeline"
    shutil.copytree(model_dir, dst)
    return dst


@pytest.fixture
def eeg_npy(tmp_path):
    path = tmp_path / "rec.npy"
    np.save(path, np.random.default_rng(0).standard_normal((N_CHANS, 4 * N_TIMES)).astype(np.float32) * 20)
    return path


def test_round_trip_through_the_folder_and_save_pretrained(model_dir, tmp_path):
    folder = _copy(model_dir, tmp_path)
    assert DreamDiffusionPipeline.from_pretrained(folder).generation_defaults == {}
    assert read_generation_defaults(folder) == {}

    path = write_generation_defaults(folder, 4.5, num_inference_steps=7, chosen_on="val: 4 images")
    assert path == folder / GENERATION_FILE
    assert json.loads(path.read_text()) == {"guidance_scale": 4.5, "num_inference_steps": 7,
                                            "chosen_on": "val: 4 images"}
    assert not list(folder.glob(f".{GENERATION_FILE}.*"))  # no temporary left behind
    pipe = DreamDiffusionPipeline.from_pretrained(folder)
    assert pipe.generation_defaults == {"guidance_scale": 4.5, "num_inference_steps": 7, "chosen_on": "val: 4 images"}

    # save_pretrained writes the recommendation back; a pipeline without one writes no file.
    pipe.generation_defaults["guidance_scale"] = 3.0
    pipe.save_pretrained(tmp_path / "again")
    assert DreamDiffusionPipeline.from_pretrained(tmp_path / "again").generation_defaults["guidance_scale"] == 3.0
    pipe.generation_defaults = {}
    pipe.save_pretrained(tmp_path / "none")
    assert not (tmp_path / "none" / GENERATION_FILE).exists()

    # Steps may be left open: null in the file.
    write_generation_defaults(folder, 2)
    assert read_generation_defaults(folder) == {"guidance_scale": 2.0, "num_inference_steps": None, "chosen_on": None}
    with pytest.raises(ConfigError, match="guidance_scale must be a number between 1 and 100"):
        write_generation_defaults(folder, 0.5)
    assert read_generation_defaults(folder)["guidance_scale"] == 2.0  # the bad call left the file as it was

    # The steering recommendation, its moves per sampler step included, round-trips too.
    write_generation_defaults(folder, 3, clip_guidance=0.07, clip_guidance_steps=3, steering_clip="builtin-tiny")
    pipe = DreamDiffusionPipeline.from_pretrained(folder)
    assert pipe.generation_defaults["clip_guidance_steps"] == 3 and pipe.generation_defaults["clip_guidance"] == 0.07
    settings = resolve_generation_settings(pipe)
    assert (settings["clip_guidance"], settings["clip_guidance_steps"]) == (0.07, 3)
    assert settings["settings_source"]["clip_guidance_steps"] == "model (generation.json)"
    assert resolve_generation_settings(pipe, clip_guidance_steps=1)["settings_source"]["clip_guidance_steps"] == "given"


@pytest.mark.parametrize("text, problem", [
    ("{not json", "not valid JSON"),
    ("[5.0]", "must hold a JSON object"),
    ('{"num_inference_steps": 10}', "has no guidance_scale"),
    ('{"guidance_scale": 0.5}', "guidance_scale must be a number between 1 and 100, got 0.5"),
    ('{"guidance_scale": "5"}', "guidance_scale must be a number between 1 and 100, got '5'"),
    ('{"guidance_scale": true}', "guidance_scale must be a number between 1 and 100, got True"),
    ('{"guidance_scale": 5, "num_inference_steps": 0}', "num_inference_steps must be an integer between 1 and 10000"),
    ('{"guidance_scale": 5, "num_inference_steps": 2.5}', "num_inference_steps must be an integer between 1 and 10000"),
    ('{"guidance_scale": 5, "clip_guidance_steps": 0}', "clip_guidance_steps must be an integer between 1 and 100"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path, text, problem):
    (tmp_path / GENERATION_FILE).write_text(text)
    with pytest.raises(ConfigError) as info:
        read_generation_defaults(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / GENERATION_FILE}: ") and problem in message
    assert "\n" not in message


def test_generate_cli_bad_file_exits_2_with_one_line(model_dir, tmp_path, eeg_npy, capsys):
    from dreamdiffusion.cli import main

    folder = _copy(model_dir, tmp_path)
    (folder / GENERATION_FILE).write_text('{"guidance_scale": 0}')
    code = main(["generate", "--model", str(folder), "--eeg-file", str(eeg_npy), "--sfreq", str(SFREQ),
                 "--output", str(tmp_path / "out"), "--num-images", "1", "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"error: {folder / GENERATION_FILE}: guidance_scale must be a number between 1 and 100, got 0"
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_generate_cli_uses_the_file_unless_a_flag_is_given(model_dir, tmp_path, eeg_npy):
    from dreamdiffusion.cli import main

    folder = _copy(model_dir, tmp_path)
    write_generation_defaults(folder, 3.5, num_inference_steps=2, chosen_on="val: test")
    common = ["generate", "--model", str(folder), "--eeg-file", str(eeg_npy), "--sfreq", str(SFREQ),
              "--num-images", "1", "--device", "cpu", "--seed", "1"]

    assert main(common + ["--output", str(tmp_path / "model")]) == 0
    m = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert m["guidance"] == 3.5 and m["steps"] == 2
    assert m["settings_source"] == {"steps": "model (generation.json)", "guidance": "model (generation.json)",
                                    "clip_guidance": "default", "clip_guidance_steps": "default"}
    assert m["model_recommends"]["chosen_on"] == "val: test"

    assert main(common + ["--output", str(tmp_path / "flag"), "--guidance", "1", "--steps", "3"]) == 0
    f = json.loads((tmp_path / "flag" / "manifest.json").read_text())
    assert f["guidance"] == 1.0 and f["steps"] == 3
    assert f["settings_source"] == {"steps": "given", "guidance": "given", "clip_guidance": "default",
                                    "clip_guidance_steps": "default"}

    # The guidance taken from the file is the one sampled with: the same image as --guidance 3.5 given.
    assert main(common + ["--output", str(tmp_path / "same"), "--guidance", "3.5"]) == 0
    s = json.loads((tmp_path / "same" / "manifest.json").read_text())
    assert s["steps"] == 2 and s["settings_source"] == {"steps": "model (generation.json)", "guidance": "given",
                                                        "clip_guidance": "default", "clip_guidance_steps": "default"}

    # Without the file: today's defaults (25 steps is slow even here, so steps are given).
    (folder / GENERATION_FILE).unlink()
    assert main(common + ["--output", str(tmp_path / "plain"), "--steps", "2"]) == 0
    p = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert p["guidance"] == 1.0 and p["settings_source"]["guidance"] == "default" and "model_recommends" not in p

    images = [np.asarray(Image.open(tmp_path / d / "images" / "0000_0.png")) for d in ("model", "same", "plain")]
    assert np.array_equal(images[0], images[1])
    assert not np.array_equal(images[0], images[2])  # guidance 3.5 vs 1 at the same seed and steps


class _Spy:
    """Delegates to a pipeline and records the keyword arguments of each call."""

    def __init__(self, pipe):
        self.pipe, self.calls = pipe, []
        self.generation_defaults = pipe.generation_defaults

    def __call__(self, eeg, **kwargs):
        self.calls.append(kwargs)
        return self.pipe(eeg, **kwargs)


def test_engine_and_app_start_at_the_models_settings(model_dir, tmp_path):
    from dreamdiffusion.app.engine import Engine

    folder = _copy(model_dir, tmp_path)
    assert Engine.from_pretrained(folder).default_guidance == 1.0  # no file: no guidance, 25 steps
    assert Engine.from_pretrained(folder).default_steps == 25
    write_generation_defaults(folder, 5.0, num_inference_steps=2, chosen_on="val")
    engine = Engine.from_pretrained(folder)
    assert engine.default_guidance == 5.0 and engine.default_steps == 2

    spy = _Spy(engine.pipe)
    engine = Engine(spy, engine.spec, engine.name)
    window = np.random.default_rng(1).standard_normal((N_CHANS, N_TIMES)).astype(np.float32)
    engine.generate(window, seed=0)
    engine.generate(window, seed=0, guidance=2.0, steps=1)
    assert [(c["guidance_scale"], c["num_inference_steps"]) for c in spy.calls] == [(5.0, 2), (2.0, 1)]

    # The web page's sliders start at the recommendation.
    from dreamdiffusion.app import web

    demo = web.build_app(engine, workdir=tmp_path / "work")
    sliders = {b.elem_id: b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) in ("steps", "guidance")}
    assert sliders == {"steps": 2, "guidance": 5.0}
