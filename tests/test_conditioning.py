"""``--conditioning auto|tokens|ip-adapter`` on each kind of model folder: a saved tokens pipeline, a saved ip-adapter
pipeline and an aligned encoder (``align`` -> ``generate`` without the demo); the refusals; the route in the records."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from dreamdiffusion.cli import main
from dreamdiffusion.conditioning import build_pipeline, plan_conditioning
from dreamdiffusion.core.constants import PAPER_SFREQ
from dreamdiffusion.data import synthetic
from dreamdiffusion.models import builtin, hub
from dreamdiffusion.models.conditioner import EEGConditioner
from dreamdiffusion.models.encoders import load_aligned_encoder
from dreamdiffusion.models.image_conditioner import ImageEmbeddingConditioner
from dreamdiffusion.models.ip_adapter import IP_ADAPTER_SUBFOLDER, IP_ADAPTER_WEIGHT_NAME, ip_adapter_root
from dreamdiffusion.pipeline import DreamDiffusionPipeline, make_scheduler
from dreamdiffusion.training.align import AlignConfig, align


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return synthetic.build_benchmark(tmp_path_factory.mktemp("cond") / "bench", seed=0, n_subjects=2,
                                     n_corpus_windows=0, n_images=40, trials_per_image=2)


@pytest.fixture(scope="module")
def aligned(bench, tmp_path_factory):
    """`dreamdiffusion align`'s output folder (a few steps: the route, not the quality, is under test)."""
    return align(AlignConfig(output=str(tmp_path_factory.mktemp("enc") / "enc"), dataset="synthetic",
                             dataset_options={"root": str(bench)}, clip="builtin-tiny", encoder_arch="linear",
                             channels="ubp17", time_pool=8, batch_size=16, max_steps=4, warmup_steps=1,
                             validate_every=2, seed=3))


@pytest.fixture(scope="module")
def ip_folder(aligned, tmp_path_factory):
    """A saved ip-adapter pipeline around the same aligned encoder (what `demo --recipe modern` writes)."""
    cond = ImageEmbeddingConditioner.from_encoder(load_aligned_encoder(aligned), builtin.CROSS_ATTENTION_DIM)
    folder = tmp_path_factory.mktemp("ip") / "pipeline"
    DreamDiffusionPipeline.from_ip_adapter(cond, preprocessing={"dataset": "synthetic"}).save_pretrained(folder)
    return folder


def _tokens_folder(root, clip_dim=builtin.CLIP_PROJECTION_DIM):
    """A saved tokens pipeline (the paper's conditioner, with a CLIP head) whose UNet differs from the base's, as a
    fine-tuned one does; its finetune_config.json beside it."""
    torch.manual_seed(0)
    cond = EEGConditioner(n_chans=128, n_times=512, sfreq=PAPER_SFREQ, patch_size=16, embed_dim=32, depth=1,
                          num_heads=2, cross_attention_dim=builtin.CROSS_ATTENTION_DIM, clip_dim=clip_dim,
                          time_embed_dim=None)
    base = hub.load_base("builtin-tiny")
    with torch.no_grad():
        base.unet.conv_in.bias.add_(0.5)
    pipe = DreamDiffusionPipeline(base.unet, base.vae, make_scheduler("dpm", base.scheduler_config), cond,
                                  preprocessing={"dataset": "synthetic"})
    pipe.save_pretrained(root / "pipeline")
    (root / "finetune_config.json").write_text(json.dumps({"base": "builtin-tiny", "clip": "builtin-tiny"}))
    return root / "pipeline"


@pytest.fixture(scope="module")
def tokens_folder(tmp_path_factory):
    return _tokens_folder(tmp_path_factory.mktemp("tokens"))


def _generate(bench, out, *args, split="test"):
    """`generate` on the first EEG of ``split`` (one image, 2 steps); returns (exit code, manifest or None)."""
    code = main(["generate", *args, "--output", str(out), "--dataset", "synthetic", "--root", str(bench),
                 "--split", split, "--limit", "1", "--num-images", "1", "--steps", "2", "--device", "cpu"])
    return code, json.loads((out / "manifest.json").read_text()) if code == 0 else None


def _image(out):
    return np.asarray(Image.open(out / "images" / "0000_0.png"), dtype=np.float32) / 255


def _refused(capsys, code, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:"), err
    for word in words:
        assert word in err[0], err[0]


def test_align_then_generate_through_the_ip_adapter(bench, aligned, ip_folder, tmp_path):
    code, manifest = _generate(bench, tmp_path / "a", "--model", str(aligned), "--conditioning", "ip-adapter")
    assert code == 0
    route = manifest["conditioning"]
    assert route["route"] == "ip-adapter" and route["built"] and route["model_kind"] == "aligned encoder"
    assert route["base"] == route["ip_adapter"] == "builtin-tiny" and route["trained_against_clip"] == "builtin-tiny"
    # another EEG, the same noise (sample 0 of EEG 0 in both runs): another image
    assert _generate(bench, tmp_path / "b", "--model", str(aligned), "--conditioning", "ip-adapter", split="val")[0] == 0
    assert np.abs(_image(tmp_path / "a") - _image(tmp_path / "b")).mean() > 0.02
    # auto on an aligned encoder is its only route; the same images as the saved pipeline around that encoder
    code, manifest = _generate(bench, tmp_path / "c", "--model", str(aligned))
    assert code == 0 and manifest["conditioning"]["requested"] == "auto"
    np.testing.assert_array_equal(_image(tmp_path / "c"), _image(tmp_path / "a"))
    code, manifest = _generate(bench, tmp_path / "d", "--model", str(ip_folder))
    assert code == 0 and manifest["conditioning"] == {"route": "ip-adapter", "requested": "auto",
                                                      "model_kind": "ip-adapter", "built": False}
    np.testing.assert_array_equal(_image(tmp_path / "d"), _image(tmp_path / "a"))


def test_ip_adapter_pipeline_takes_ip_adapter_and_refuses_tokens(bench, ip_folder, tmp_path, capsys):
    code, manifest = _generate(bench, tmp_path / "a", "--model", str(ip_folder), "--conditioning", "ip-adapter")
    assert code == 0 and manifest["conditioning"]["route"] == "ip-adapter" and not manifest["conditioning"]["built"]
    capsys.readouterr()
    code, _ = _generate(bench, tmp_path / "b", "--model", str(ip_folder), "--conditioning", "tokens")
    _refused(capsys, code, "no token conditioner")
    code, _ = _generate(bench, tmp_path / "c", "--model", str(ip_folder), "--base", "builtin-tiny")
    _refused(capsys, code, "--base is for an ip-adapter pipeline built on the fly")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_aligned_encoder_refuses_tokens_and_unknown_routes(bench, aligned, tmp_path, capsys):
    code, _ = _generate(bench, tmp_path / "a", "--model", str(aligned), "--conditioning", "tokens")
    _refused(capsys, code, "aligned encoder predicts a CLIP image embedding only")
    code, _ = _generate(bench, tmp_path / "b", "--model", str(aligned), "--conditioning", "text")
    _refused(capsys, code, "--conditioning must be one of auto, tokens, ip-adapter")


def test_tokens_pipeline_through_its_clip_head(bench, tokens_folder, tmp_path, capsys):
    code, manifest = _generate(bench, tmp_path / "t", "--model", str(tokens_folder))
    assert code == 0 and manifest["conditioning"]["route"] == "tokens" and not manifest["conditioning"]["built"]
    code, _ = _generate(bench, tmp_path / "x", "--model", str(tokens_folder), "--ip-adapter", "builtin-tiny")
    _refused(capsys, code, "--ip-adapter is for", "--conditioning ip-adapter")
    code, manifest = _generate(bench, tmp_path / "a", "--model", str(tokens_folder), "--conditioning", "ip-adapter")
    assert code == 0
    quality = json.loads((ip_adapter_root() / IP_ADAPTER_SUBFOLDER / "quality.json").read_text())
    route = manifest["conditioning"]
    assert route["route"] == "ip-adapter" and route["built"] and route["model_kind"] == "tokens"
    assert route["image_embed_norm"] == pytest.approx(quality["train_image_embed_norm"])
    assert route["base"] == "builtin-tiny" and route["trained_against_clip"] == "builtin-tiny"  # finetune_config.json
    assert _generate(bench, tmp_path / "b", "--model", str(tokens_folder), "--conditioning", "ip-adapter",
                     split="val")[0] == 0
    assert np.abs(_image(tmp_path / "a") - _image(tmp_path / "b")).mean() > 0.02  # the EEG steers the image
    assert np.abs(_image(tmp_path / "a") - _image(tmp_path / "t")).mean() > 0.02  # another route, another image
    # the head's prediction rescaled to the adapter's norm, through the BASE's UNet (not the fine-tuned one)
    pipe = build_pipeline(plan_conditioning(tokens_folder, "ip-adapter"))
    saved = EEGConditioner.from_pretrained(tokens_folder, subfolder="eeg_conditioner").eval()
    eeg = torch.randn(2, 128, 512)
    head = torch.nn.functional.normalize(saved(eeg).clip_embeds, dim=-1) * quality["train_image_embed_norm"]
    torch.testing.assert_close(pipe.predict_image_embeds(eeg), head)
    torch.testing.assert_close(pipe.unet.conv_in.bias, hub.load_base("builtin-tiny").unet.conv_in.bias)


def test_tokens_pipeline_refused_where_its_head_cannot_feed_the_adapter(bench, tmp_path, capsys):
    narrow = _tokens_folder(tmp_path / "narrow", clip_dim=24)  # a head of another CLIP's width
    code, _ = _generate(bench, tmp_path / "a", "--model", str(narrow), "--conditioning", "ip-adapter")
    _refused(capsys, code, "24-wide", f"{builtin.CLIP_PROJECTION_DIM}-wide")
    # an adapter that records no embedding norm: the head's direction-only prediction has no length to take
    adapter = tmp_path / "adapter"
    (adapter / IP_ADAPTER_SUBFOLDER).mkdir(parents=True)
    shutil.copy(ip_adapter_root() / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT_NAME, adapter / IP_ADAPTER_SUBFOLDER)
    code, _ = _generate(bench, tmp_path / "b", "--model", str(narrow.parent / "pipeline"), "--conditioning",
                        "ip-adapter", "--ip-adapter", str(adapter))
    _refused(capsys, code, "records no embedding norm")


def test_evaluate_app_engine_and_stream_take_the_route(bench, aligned, ip_folder, tmp_path, capsys):
    from dreamdiffusion.app.engine import Engine

    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(aligned), "--output", str(out), "--dataset", "synthetic", "--root",
                 str(bench), "--limit", "4", "--num-images", "1", "--steps", "2", "--n-way", "2", "--trials", "2",
                 "--no-baselines", "--no-fid", "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conditioning"]["route"] == "ip-adapter" and metrics["conditioning"]["built"]
    assert metrics["clip"] == "builtin-tiny" and metrics["retrieval_top1"] is not None  # align_config.json's CLIP
    capsys.readouterr()
    code = main(["evaluate", "--model", str(ip_folder), "--conditioning", "tokens", "--output", str(tmp_path / "e2"),
                 "--dataset", "synthetic", "--root", str(bench)])
    _refused(capsys, code, "no token conditioner")
    engine = Engine.from_pretrained(aligned)
    assert engine.conditioning["route"] == "ip-adapter" and engine.n_chans == 128
    images = engine.generate(np.random.default_rng(0).normal(size=(128, 512)).astype(np.float32), steps=2,
                             guidance=1.0, seed=0)
    assert images[0].size == (builtin.RESOLUTION, builtin.RESOLUTION)
    assert Engine.from_pretrained(ip_folder, "ip-adapter").conditioning["built"] is False
    for command in ("app", "stream"):
        assert "--conditioning" in _help(command, capsys)


def _help(command, capsys):
    capsys.readouterr()
    assert main([command, "--help"]) == 0
    return capsys.readouterr().out


def test_generate_steers_with_the_recorded_clip(bench, aligned, ip_folder, tmp_path, capsys):
    from dreamdiffusion.core.seeding import sample_seed

    code, manifest = _generate(bench, tmp_path / "a", "--model", str(aligned), "--candidates", "3")
    assert code == 0 and manifest["candidates"] == 3 and manifest["steering_clip"] == "builtin-tiny"
    assert manifest["clip_guidance"] == 0
    # the kept image is one of the 3 draws of EEG 0 (seeds j = 0, 1, 2)
    assert manifest["items"][0]["seeds"][0] in {sample_seed(0, 0, j) for j in range(3)}
    # a saved ip-adapter pipeline records no CLIP: --candidates needs --clip, said in one line before any image
    capsys.readouterr()
    code, _ = _generate(bench, tmp_path / "b", "--model", str(ip_folder), "--candidates", "2")
    _refused(capsys, code, "--candidates", "--clip")
    assert not (tmp_path / "b").exists()
    code, manifest = _generate(bench, tmp_path / "c", "--model", str(ip_folder), "--candidates", "2",
                               "--clip", "builtin-tiny", "--clip-guidance", "0.1")
    assert code == 0 and manifest["candidates"] == 2 and manifest["clip_guidance"] == 0.1
    code, _ = _generate(bench, tmp_path / "d", "--model", str(ip_folder), "--clip-guidance", "0.1")
    _refused(capsys, code, "--clip-guidance", "--clip")
    code, _ = _generate(bench, tmp_path / "e", "--model", str(aligned), "--clip-guidance", "2")
    _refused(capsys, code, "--clip-guidance")


def test_generate_applies_the_clip_guidance_the_model_recommends(bench, ip_folder, tmp_path):
    from dreamdiffusion.pipeline import write_generation_defaults

    folder = tmp_path / "pipe"
    shutil.copytree(ip_folder, folder)
    write_generation_defaults(folder, 3.0, 2, "val: test", clip_guidance=0.2, steering_clip="builtin-tiny")
    code, manifest = _generate(bench, tmp_path / "a", "--model", str(folder))
    assert code == 0 and manifest["clip_guidance"] == 0.2 and manifest["steering_clip"] == "builtin-tiny"
    assert manifest["settings_source"]["clip_guidance"] == "model (generation.json)"
    code, manifest = _generate(bench, tmp_path / "b", "--model", str(folder), "--clip-guidance", "0")
    assert code == 0 and manifest["clip_guidance"] == 0 and manifest["settings_source"]["clip_guidance"] == "given"
    assert np.abs(_image(tmp_path / "a") - _image(tmp_path / "b")).mean() > 1e-3  # the guidance moved the image
