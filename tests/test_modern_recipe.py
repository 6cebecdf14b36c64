"""``demo --recipe modern`` end to end (reduced): align -> IP-Adapter pipeline -> val strength -> evaluate; the
pipeline it writes is an ordinary pipeline folder that generate and the app's engine load."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dreamdiffusion.app.engine import Engine
from dreamdiffusion.cli import main
from dreamdiffusion.experiments.demo import METRIC_KEYS
from dreamdiffusion.models.image_conditioner import ImageEmbeddingConditioner
from dreamdiffusion.pipeline import DreamDiffusionPipeline


@pytest.fixture(scope="module")
def modern_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("modern") / "run"
    assert main(["demo", "--recipe", "modern", "--output", str(out), "--seed", "1", "--fast"]) == 0
    return out


def test_modern_demo_end_to_end(modern_run):
    out = modern_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"] == "modern" and metrics["config"]["recipe"] == "modern"
    for key in METRIC_KEYS + ("judge_accuracy_real", "timings_s", "align_summary"):
        assert key in metrics, key
    assert metrics["n_way"] == 10 and metrics["num_eeg"] == 8
    assert 0.0 <= metrics["retrieval_top1"] <= metrics["retrieval_top5"] <= 1.0
    assert {"align_s", "pipeline_s", "evaluate_s"} <= set(metrics["timings_s"])
    # the aligned encoder kept the step the settings name (the last: DemoSettings.align_select), with its val
    # retrieval in the summary; the guidance is the recipe's fixed one (DemoSettings.modern_guidance), recorded and
    # riding with the pipeline
    assert metrics["config"]["settings"]["align_select"] == "last"
    assert metrics["align_summary"]["chosen_on"] == "last step"
    assert metrics["align_summary"]["selected_step"] == metrics["config"]["settings"]["align_steps"]
    assert 0.0 <= metrics["align_summary"]["val"]["top1"] <= metrics["align_summary"]["val"]["top5"] <= 1.0
    assert metrics["align_summary"]["init_ridge"]["alpha"] > 0  # the demo starts the linear encoder at the ridge map
    chosen = json.loads((out / "guidance.json").read_text())
    assert metrics["guidance"] == chosen["guidance"] == metrics["config"]["settings"]["modern_guidance"] == 5.0
    assert chosen["records"] == [] and "modern_guidance" in chosen["chosen_on"]
    recommended = json.loads((out / "pipeline" / "generation.json").read_text())
    assert recommended["guidance_scale"] == chosen["guidance"]
    # the recipe's CLIP guidance rides with the pipeline, with the CLIP it steers by, as the paper recipe's does
    assert recommended["clip_guidance"] == metrics["config"]["settings"]["modern_clip_guidance"] > 0
    assert recommended["steering_clip"] == metrics["config"]["clip"]
    # where each recommendation came from: the strength's val choice, then the fixed guidance
    assert recommended["chosen_on"].startswith("val: ") and recommended["chosen_on"].endswith(
        "; guidance fixed in the settings (DemoSettings.modern_guidance)")
    index = json.loads((out / "pipeline" / "model_index.json").read_text())
    assert index["conditioning"] == "ip-adapter"
    # ATM's low-level route: the latent decoder fitted on train, its strength chosen on val and recommended
    low_level = json.loads((out / "low_level.json").read_text())
    assert metrics["low_level"]["low_level_strength"] == low_level["low_level_strength"] in (1.0, 0.67)
    assert [r["low_level_strength"] for r in low_level["records"]] == [1.0, 0.67]
    assert metrics["low_level"]["fit"]["n_train"] > 0 and metrics["low_level"]["fit"]["alpha"] > 0
    assert recommended["low_level_strength"] == low_level["low_level_strength"]
    conditioner = json.loads((out / "pipeline" / "eeg_conditioner" / "config.json").read_text())
    assert conditioner["latent_shape"] == [4, 8, 8]
    assert index["eeg_conditioner"] == ["dreamdiffusion.models.image_conditioner", "ImageEmbeddingConditioner"]
    assert not (out / "finetune").exists() and not (out / "pretrain").exists()  # no diffusion training at all
    report = (out / "report.md").read_text()
    assert "| `top1_accuracy` |" in report and "align" in report and (out / "evaluate" / "samples.png").is_file()


def test_modern_pipeline_predicts_with_the_aligned_encoder_and_the_app_loads_it(modern_run):
    from dreamdiffusion.models.encoders import load_aligned_encoder

    pipe = DreamDiffusionPipeline.from_pretrained(modern_run / "pipeline")
    assert isinstance(pipe.eeg_conditioner, ImageEmbeddingConditioner)
    aligned = load_aligned_encoder(modern_run / "align")
    eeg = torch.randn(2, 128, 512)
    # the pipeline's embedding is the aligned encoder's own prediction, through the prior when val kept it
    record = json.loads((modern_run / "metrics.json").read_text())["prior"]
    assert record["used"] == (record["val_with"]["cosine"] > record["val_without"]["cosine"])
    assert (pipe.eeg_conditioner.prior is not None) == record["used"]
    expected = aligned.embed(eeg)
    if record["used"]:
        with torch.no_grad():
            expected = pipe.eeg_conditioner.prior(expected)
    torch.testing.assert_close(pipe.predict_image_embeds(eeg), expected)
    engine = Engine.from_pretrained(modern_run / "pipeline")
    assert engine.n_chans == 128
    images = engine.generate(np.random.default_rng(0).normal(size=(128, 512)).astype(np.float32), steps=2,
                             guidance=1.0, seed=0)
    assert len(images) >= 1 and images[0].size == (32, 32)


def test_generate_applies_the_recommended_low_level_strength_or_the_flag(modern_run, tmp_path):
    recommended = json.loads((modern_run / "pipeline" / "generation.json").read_text())["low_level_strength"]
    common = ["generate", "--model", str(modern_run / "pipeline"), "--dataset", "synthetic", "--root",
              str(modern_run / "benchmark"), "--split", "test", "--limit", "1", "--num-images", "1", "--steps", "2"]
    assert main(common + ["--output", str(tmp_path / "a")]) == 0
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["low_level_strength"] == recommended
    assert manifest["settings_source"]["low_level_strength"] == "model (generation.json)"
    assert main(common + ["--output", str(tmp_path / "b"), "--low-level-strength", "0.5"]) == 0
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["low_level_strength"] == 0.5 and manifest["settings_source"]["low_level_strength"] == "given"
    assert main(common + ["--output", str(tmp_path / "c"), "--low-level-strength", "0"]) != 0  # one line, no image
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_ablate_runs_the_modern_recipe_on_the_same_benchmark(tmp_path):
    from dreamdiffusion.experiments.ablation import MODERN_VARIANT

    out = tmp_path / "ablate"
    assert main(["ablate", "--output", str(out), "--seeds", "1", "--first-seed", "1", "--fast",
                 "--variant", MODERN_VARIANT, "--limit", "4"]) == 0
    summary = json.loads((out / "ablation.json").read_text())
    (row,) = summary["rows"]
    assert row["variant"] == MODERN_VARIANT and row["n_seeds"] == 1 and row["top1_accuracy_mean"] is not None
    (pipeline,) = (out / "seed1").glob("pipeline-*")  # the variant's own pipeline folder
    index = json.loads((pipeline / "model_index.json").read_text())
    assert index["conditioning"] == "ip-adapter"
    assert MODERN_VARIANT in (out / "ablation.md").read_text()
    assert (out / "ablation.png").stat().st_size > 1000 and (out / "ablation_retrieval.png").stat().st_size > 1000


def test_image_embedding_conditioner_round_trip_and_identity_prior(tmp_path):
    from dreamdiffusion.core.errors import ConfigError
    from dreamdiffusion.models.encoders import AlignedEncoder

    torch.manual_seed(0)
    enc = AlignedEncoder(arch="linear", in_chans=8, in_times=64, in_sfreq=128.0, clip_dim=16, time_pool=8,
                         target_scale=3.0).eval()
    cond = ImageEmbeddingConditioner.from_encoder(enc, cross_attention_dim=12, prior_hidden=20)
    eeg = torch.randn(3, 8, 64)
    out = cond(eeg)
    torch.testing.assert_close(out.clip_embeds, enc.embed(eeg))  # the prior starts as the identity
    torch.testing.assert_close(out.clip_embeds.norm(dim=-1), torch.full((3,), 3.0))
    assert out.cond.shape == (3, 77, 12) and cond.config.n_chans == 8 and cond.config.n_times == 64
    with torch.no_grad():
        cond.prior.net[-1].bias.fill_(0.5)  # a trained prior moves the embedding; it must survive save/load
    cond.save_pretrained(tmp_path / "c")
    assert {f.suffix for f in (tmp_path / "c").iterdir()} == {".json", ".safetensors"}
    loaded = ImageEmbeddingConditioner.from_pretrained(tmp_path / "c").eval()
    torch.testing.assert_close(loaded(eeg).clip_embeds, cond(eeg).clip_embeds)
    assert not torch.allclose(loaded(eeg).clip_embeds, enc.embed(eeg))
    with pytest.raises(ConfigError, match="8 EEG channels"):
        cond(torch.randn(1, 7, 64))


def test_the_app_applies_the_models_low_level_strength_or_the_slider(modern_run, tmp_path):
    """The web app's engine starts at the model's recommended strength, the page's slider overrides it (and the
    manifest says which), and a strength outside (0, 1] is one line, no image; a pipeline without a latent guess
    shows no slider and ignores the value."""
    from dreamdiffusion.app import web
    from dreamdiffusion.core.errors import ConfigError

    recommended = json.loads((modern_run / "pipeline" / "generation.json").read_text())["low_level_strength"]
    engine = Engine.from_pretrained(modern_run / "pipeline")
    assert engine.guesses_latents and engine.settings()["low_level_strength"] == recommended
    defaults = web._setting_defaults(engine)
    assert defaults["strength"] == recommended and f"recommends {recommended:g}" in defaults["strength_info"]
    (sample,) = web.benchmark_samples(tmp_path / "samples", n=1, benchmark=modern_run / "benchmark")
    loaded = web.load_sample(sample)
    run = dict(onset_s=0.0, steps=4, seed=3, num_images=1)
    model = web.run_generation(engine, loaded, out_dir=tmp_path / "model", **run)
    manifest = json.loads(model.manifest_path.read_text())
    assert manifest["low_level_strength"] == recommended
    assert manifest["settings_source"]["low_level_strength"] == "model (generation.json)"
    same = web.run_generation(engine, loaded, out_dir=tmp_path / "same", low_level_strength=recommended, **run)
    assert np.array_equal(np.asarray(same.images[0]), np.asarray(model.images[0]))
    other = 0.25 if recommended != 0.25 else 0.5
    moved = web.run_generation(engine, loaded, out_dir=tmp_path / "moved", low_level_strength=other, **run)
    manifest = json.loads(moved.manifest_path.read_text())
    assert manifest["low_level_strength"] == other and manifest["settings_source"]["low_level_strength"] == "given"
    assert not np.array_equal(np.asarray(moved.images[0]), np.asarray(model.images[0]))
    for bad in (0, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="low-level strength|low_level_strength"):
            web.run_generation(engine, loaded, out_dir=tmp_path / "bad", low_level_strength=bad, **run)
    assert not (tmp_path / "bad").exists()
    # the embedded paper pipeline has no latent guess: no slider, and a value changes nothing
    paper = Engine.from_pretrained()
    assert not paper.guesses_latents and "low_level_strength" not in paper.settings(low_level_strength=0.5)


def test_stream_images_take_the_models_low_level_strength_or_the_flag(modern_run, tmp_path):
    """One image of `stream` (its _image step, on a recording window instead of a live buffer): the model's strength
    by default, --low-level-strength when given, and the manifest line says which."""
    from dreamdiffusion.app import web
    from dreamdiffusion.app.stream import Trigger, _image

    recommended = json.loads((modern_run / "pipeline" / "generation.json").read_text())["low_level_strength"]
    engine = Engine.from_pretrained(modern_run / "pipeline")
    (sample,) = web.benchmark_samples(tmp_path / "samples", n=1, benchmark=modern_run / "benchmark")
    raw = web.load_sample(sample).raw
    common = dict(stream_name="test", session="s", seed=5, mapping=None)
    records = {}
    for name, strength in (("model", None), ("given", 0.25 if recommended != 0.25 else 0.5)):
        out = tmp_path / name
        out.mkdir()
        used = engine.settings(4, None, strength)
        records[name] = _image(engine, raw, 0.0, Trigger("interval"), 0.0, 0, output=out, used=used, **common)
    assert records["model"]["low_level_strength"] == recommended
    assert records["model"]["settings_source"]["low_level_strength"] == "model (generation.json)"
    assert records["given"]["settings_source"]["low_level_strength"] == "given"
    pixels = [np.asarray(Image.open(tmp_path / n / records[n]["image"])) for n in ("model", "given")]
    assert not np.array_equal(*pixels)
