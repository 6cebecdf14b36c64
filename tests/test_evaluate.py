"""evaluate: the judge, the scoring of generated images, the generated-image round trip, the report pieces."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.evaluation import evaluate as E
from dreamdiffusion.evaluation import samples as S
from dreamdiffusion.evaluation.classifier import ImageClassifier
from dreamdiffusion.experiments import report as R


def _digit_like_images(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = np.zeros((size, size, 3), np.uint8)
        a[:, :, i % 3] = 40 + 20 * (i % 5)
        a += rng.integers(0, 60, size=a.shape, dtype=np.uint8)
        out.append(Image.fromarray(a))
    return out


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    """A 4-class ResNet image classifier saved like a hub model, with its image processor."""
    from transformers import ResNetConfig, ResNetForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("judge")
    torch.manual_seed(0)
    cfg = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                       num_labels=4, id2label={i: f"c{i}" for i in range(4)}, label2id={f"c{i}": i for i in range(4)})
    ResNetForImageClassification(cfg).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(folder)
    return folder


def test_classifier_loads_folder_and_scores(tiny_judge):
    judge = ImageClassifier.load(tiny_judge)
    assert judge.num_classes == 4 and judge.labels == ["c0", "c1", "c2", "c3"]
    logits = judge.logits(_digit_like_images(5))
    assert logits.shape == (5, 4) and torch.isfinite(logits).all()
    # batching does not change the answer
    torch.testing.assert_close(judge.logits(_digit_like_images(5), batch_size=2), logits)


def test_classifier_missing_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        ImageClassifier.load(tmp_path / "nope" / "judge")
    assert "nope" in str(info.value)


def test_identical_samples_score_perfectly(tiny_judge):
    judge = ImageClassifier.load(tiny_judge)
    gt = _digit_like_images(8)
    samples = [[img, img] for img in gt]
    emb = torch.randn(8, 6)
    m = E.compute_metrics(gt, samples, judge, n_way=50, trials=10, seed=0, labels=None, eeg_embeds=emb,
                          image_embeds=emb.clone(), fid=False)
    assert m["n_way"] == 4 and m["chance"] == pytest.approx(0.25)  # capped at the judge's 4 classes
    assert m["top1_accuracy"] == 1.0 and m["top1_accuracy_max"] == 1.0
    assert m["ssim"] == pytest.approx(1.0) and m["pcc"] == pytest.approx(1.0)
    assert m["ssim_2way"] == 1.0 and m["pcc_2way"] == 1.0
    assert m["retrieval_top1"] == 1.0 and m["retrieval_n_way"] == 8
    assert m["embed_2way"] == 1.0  # the predicted embedding itself, scored as the ridge's is
    assert m["num_eeg"] == 8 and m["num_images"] == 2
    # the same 8 EEGs as 2 trials each of 4 images: scored against the 4 distinct images
    ids = ["a", "b", "c", "d"] * 2
    gt2 = gt[:4] * 2
    emb2 = emb[:4].repeat(2, 1)
    m = E.compute_metrics(gt2, [[img] for img in gt2], judge, n_way=4, trials=10, seed=0, eeg_embeds=emb2,
                          image_embeds=emb2.clone(), fid=False, image_ids=ids)
    assert m["retrieval_n_way"] == 4 and m["retrieval_top1"] == 1.0 and m["num_distinct_images"] == 4
    assert m["ssim_2way"] == 1.0 and m["ssim"] == pytest.approx(1.0)
    assert E.distinct_images(["x", "y", "x", "z"], 4) == ([0, 1, 3], [0, 1, 0, 2])


def test_noise_samples_score_low_level_near_zero(tiny_judge):
    judge = ImageClassifier.load(tiny_judge)
    gt = _digit_like_images(10)
    rng = np.random.default_rng(1)
    noise = [[Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))] for _ in gt]
    m = E.compute_metrics(gt, noise, judge, n_way=4, trials=5, fid=False)
    assert m["ssim"] < 0.2 and abs(m["pcc"]) < 0.2
    assert m["retrieval_top1"] is None and "embed_2way" not in m  # no embeddings given


def test_samples_round_trip_through_manifest(tmp_path):
    samples = [_digit_like_images(2, seed=i) for i in range(3)]
    items = [{"image_name": f"img{i}", "label": i} for i in range(3)]
    S.save_samples(samples, items, tmp_path / "samples", {"seed": 0})
    back = S.read_samples(tmp_path, 3)  # the evaluate output folder works as --generated
    assert len(back) == 3 and len(back[0]) == 2
    assert np.array_equal(np.asarray(back[2][1]), np.asarray(samples[2][1]))
    with pytest.raises(DataError, match="manifest"):
        S.read_samples(tmp_path, 4)
    with pytest.raises(DataError, match="manifest"):
        S.read_samples(tmp_path / "elsewhere", 1)


def test_generate_samples_is_deterministic_and_batch_independent(parts):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from dreamdiffusion.models.conditioner import EEGConditioner
    from dreamdiffusion.pipeline import DreamDiffusionPipeline
    from stageb_helpers import CLIP_DIM, CROSS

    base, enc = parts / "base", parts / "enc"
    cond = EEGConditioner.from_encoder(enc, cross_attention_dim=CROSS, clip_dim=CLIP_DIM)
    pipe = DreamDiffusionPipeline(
        unet=UNet2DConditionModel.from_pretrained(base / "unet"), vae=AutoencoderKL.from_pretrained(base / "vae"),
        scheduler=DDIMScheduler.from_pretrained(base / "scheduler"), eeg_conditioner=cond)
    eegs = [torch.randn(cond.config.n_chans, cond.config.n_times) for _ in range(3)]
    a = E.generate_samples(pipe, eegs, num_images=2, steps=2, guidance=1.0, seed=5, batch_size=3, progress=False)
    b = E.generate_samples(pipe, eegs, num_images=2, steps=2, guidance=1.0, seed=5, batch_size=1, progress=False)
    c = E.generate_samples(pipe, eegs, num_images=2, steps=2, guidance=1.0, seed=6, batch_size=3, progress=False)
    assert len(a) == 3 and all(len(row) == 2 for row in a)
    flat = lambda s: np.stack([np.asarray(img) for row in s for img in row])
    assert np.array_equal(flat(a), flat(b))
    assert not np.array_equal(flat(a), flat(c))
    emb = E.eeg_clip_embeddings(pipe, eegs)
    assert emb.shape == (3, CLIP_DIM)


def test_evaluate_refuses_without_model_or_images(tmp_path):
    with pytest.raises(ConfigError):
        E.evaluate(E.EvaluateConfig(output=str(tmp_path)))


def test_find_clip_reads_finetune_config(tmp_path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "finetune_config.json").write_text(json.dumps({"clip": "builtin-tiny"}))
    assert E.find_clip_for_model(tmp_path / "pipeline") == "builtin-tiny"
    assert E.find_clip_for_model(tmp_path / "x" / "other") is None


# ---------------------------------------------------------------- report pieces

def test_report_figures_and_markdown(tmp_path):
    gt = _digit_like_images(3)
    grid = R.comparison_grid(gt, [[g, g] for g in gt], tmp_path / "grid.png", row_titles=["a", "b", "c"])
    traces = R.eeg_traces(np.random.default_rng(0).normal(size=(16, 128)), 256.0, tmp_path / "eeg.png")
    curve = R.curves({"train": ([1, 2, 3], [3.0, 2.0, 1.0])}, tmp_path / "curve.png")
    bars = R.bar_chart(["a", "b"], [0.5, 0.7], [0.1, 0.0], tmp_path / "bars.png", "acc", chance=0.1,
                       references={"ridge": 0.8, "unknown": None})
    for f in (grid, traces, curve, bars):
        assert Path(f).stat().st_size > 1000
        assert Image.open(f).format == "PNG"
    assert not list(tmp_path.glob(".*"))  # no temp files left behind
    md = R.metrics_markdown({"top1_accuracy": 0.5, "chance": 0.1, "n_way": 10, "ssim": 0.3, "fid": None,
                             "fid_skipped": "no weights"})
    assert "| `top1_accuracy` |" in md and "0.500" in md and "FID/IS skipped: no weights" in md
    # the method's predicted embedding sits beside the ridge's embedding (its clip_* key), not beside its images
    md = R.metrics_markdown({"clip_within_class_2way": 0.512, "embed_within_class_2way": 0.587,
                             "baseline_ridge_clip": {"clip_within_class_2way": 0.555}})
    row = next(line for line in md.splitlines() if line.startswith("| CLIP 2-way within class, the predicted"))
    assert "0.587" in row and "0.555" in row
    rep = R.Report("Demo")
    rep.add("Samples", "text", [("grid", grid), ("missing", tmp_path / "nope.png")], root=tmp_path)
    path = rep.write(tmp_path / "report.md")
    text = path.read_text()
    assert "![grid](grid.png)" in text and "nope.png" not in text


def test_item_classes_for_class_filter():
    assert E.item_classes({"label": 3, "image_name": "n02690373_1234"}) == {"3", "n02690373"}
    assert E.item_classes({"label": 7, "image_name": "digit-0042.png"}) == {"7"}
