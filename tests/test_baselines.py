"""The baselines beside every evaluation: ridge -> class lookup through the base, ridge -> CLIP embedding."""

import numpy as np
import pytest
import torch

from dreamdiffusion.core.ridge import RIDGE_ALPHAS
from dreamdiffusion.data import synthetic
from dreamdiffusion.evaluation import baselines as B
from dreamdiffusion.evaluation.classifier import ImageClassifier


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """200 digits, 2 trials each, at an SNR where a linear decoder reads the digit well."""
    return synthetic.build_benchmark(tmp_path_factory.mktemp("bl") / "bench", seed=0, n_subjects=2,
                                     n_corpus_windows=0, n_images=200, trials_per_image=2, snr=0.3)


def test_ridge_clip_scores_known_answers():
    rng = np.random.default_rng(0)
    truth = torch.as_tensor(rng.standard_normal((6, 16)))
    targets = [0, 1, 2, 3, 4, 5, 0, 1]
    classes = ["a", "a", "a", "b", "b", "b"]
    perfect = B.ridge_clip_scores(truth[targets], truth, targets, classes, trials=5)
    assert perfect["retrieval_top1"] == 1.0 and perfect["clip_within_class_2way"] == 1.0
    assert perfect["clip_2way"] == 1.0 and perfect["retrieval_n_way"] == 6
    # a class lookup: one embedding per class, whatever member was seen -> exactly 0.5 within the class
    proto = torch.as_tensor(rng.standard_normal((2, 16)))
    lookup = proto[[0, 0, 0, 1, 1, 1]]
    out = B.ridge_clip_scores(lookup, truth, list(range(6)), classes, trials=5)
    assert out["clip_within_class_2way"] == pytest.approx(0.5)


def test_margins_over_the_ridge_map_are_the_reported_differences_with_an_interval():
    rng = np.random.default_rng(1)
    truth = torch.as_tensor(rng.standard_normal((12, 16)))
    targets = [i % 12 for i in range(48)]  # four trials of each image
    classes = ["a"] * 6 + ["b"] * 6
    noisy = lambda scale: truth[targets] + scale * torch.as_tensor(rng.standard_normal((48, 16)))
    ridge, head, images = noisy(3.0), noisy(0.5), noisy(1.0)[:, None]
    side = B.TestSide(eegs=[], labels=None, targets=targets, distinct_classes=classes, truth_embeds=truth,
                      num_images=1, steps=1, guidance=1.0, seed=0, n_way_retrieval=6, trials=7,
                      method_eeg_embeds=head, method_gen_embeds=images)
    margins = B.ridge_clip_margins(ridge, side, n_boot=500)
    assert set(margins) == {"retrieval_top1", "retrieval_top5", "clip_within_class_2way", "embed_within_class_2way"}
    ridge_scores = B.ridge_clip_scores(ridge, truth, targets, classes, n_way=6, trials=7, seed=0)
    head_scores = B.ridge_clip_scores(head, truth, targets, classes, n_way=6, trials=7, seed=0)
    # each difference is exactly that of the two reported numbers (the same 6-way trials on both sides)
    for key in ("retrieval_top1", "retrieval_top5"):
        assert margins[key]["difference"] == pytest.approx(head_scores[key] - ridge_scores[key])
    assert margins["embed_within_class_2way"]["difference"] == pytest.approx(
        head_scores["clip_within_class_2way"] - ridge_scores["clip_within_class_2way"])
    image_scores = B.ridge_clip_scores(images[:, 0], truth, targets, classes, n_way=6, trials=7, seed=0)
    assert margins["clip_within_class_2way"]["difference"] == pytest.approx(
        image_scores["clip_within_class_2way"] - ridge_scores["clip_within_class_2way"])
    for m in margins.values():  # a far better predictor: intervals above 0, drawn over the 12 images
        assert 0 < m["low"] <= m["difference"] <= m["high"] and m["n_groups"] == 12 and m["n_boot"] == 500
    # no method embeddings: no margins
    assert B.ridge_clip_margins(ridge, B.TestSide(**{**side.__dict__, "method_eeg_embeds": None,
                                                      "method_gen_embeds": None})) == {}


def test_class_lookup_draws_the_class_and_is_seeded():
    classes = list(range(10))
    images = B.class_lookup_images("builtin-tiny", classes, num_images=1, steps=6, guidance=3.0, seed=0)
    assert len(images) == 10 and all(len(row) == 1 and row[0].size == (32, 32) for row in images)
    judge = ImageClassifier.load("builtin-tiny")
    judged = judge.logits([row[0] for row in images]).argmax(dim=1)
    assert (judged == torch.tensor(classes)).float().mean() >= 0.8  # the base draws the digit it is asked for
    again = B.class_lookup_images("builtin-tiny", [3], num_images=1, steps=6, guidance=3.0, seed=0)
    assert not np.array_equal(np.asarray(again[0][0]), np.asarray(images[0][0]))  # class 3 vs 0, same noise
    first_again = B.class_lookup_images("builtin-tiny", [0, 1], num_images=1, steps=6, guidance=3.0, seed=0)
    assert np.array_equal(np.asarray(first_again[1][0]), np.asarray(images[1][0]))  # batch-independent noise
    assert B.class_conditioning("builtin-tiny")[2] == [str(d) for d in range(10)]


def test_run_baselines_decode_the_benchmark(bench, tmp_path):
    train = B.load_train_pairs("synthetic", {"root": str(bench)})
    assert train.features.shape == (len(train.image_ids), 128 * B.N_BINS) and len(train.images) < len(train.image_ids)
    test_ds = synthetic.SyntheticPairs(bench, "test")
    items = [test_ds[i] for i in range(len(test_ds))][:20]
    names = sorted({it["image_name"] for it in items})
    targets = [names.index(it["image_name"]) for it in items]
    labels = [str(it["label"]) for it in items]
    distinct_classes = [next(lab for lab, t in zip(labels, targets) if t == k) for k in range(len(names))]
    # a stand-in CLIP: the image's pixels, flattened (linear in what the simulated brain reads)
    embed = lambda images: torch.as_tensor(np.stack([np.asarray(im, np.float32)[::4, ::4, 0].ravel()
                                                     for im in images]))
    truth = embed([next(it["image"] for it in items if it["image_name"] == n) for n in names])
    judge = ImageClassifier.load("builtin-tiny")
    scored = []

    def score(images, rows):
        scored.append((images, rows))
        return {"top1_accuracy": float((judge.logits([r[0] for r in images]).argmax(1)
                                        == torch.tensor([int(labels[i]) for i in rows])).float().mean())}

    side = B.TestSide(eegs=[it["eeg"] for it in items], labels=labels, targets=targets,
                      distinct_classes=distinct_classes, truth_embeds=truth, num_images=1, steps=4, guidance=3.0,
                      seed=0, trials=5)
    out = B.run_baselines(train, side, "builtin-tiny", embed, score)
    klass, ridge = out["baseline_ridge_class"], out["baseline_ridge_clip"]
    assert klass["eeg_accuracy"] >= 0.7 and klass["top1_accuracy"] >= 0.6  # chance 0.1
    assert klass["lda_eeg_accuracy"] >= 0.7  # the discriminant beside it, on the same features
    # the lookup is scored on the first trial of each distinct image (its images depend on the class only)
    images, rows = scored[0]
    assert len(scored) == 1 and rows == [targets.index(k) for k in range(len(names))] and len(images) == len(names)
    assert ridge["retrieval_top5"] > ridge["retrieval_chance_top5"] and ridge["retrieval_n_way"] == len(names)
    assert 0.0 <= ridge["clip_within_class_2way"] <= 1.0 and ridge["ridge_alpha"] in RIDGE_ALPHAS
    # where the lookup cannot exist, it says why instead of failing
    plain = tmp_path / "text-to-image-base"
    plain.mkdir()
    skipped = B.run_baselines(train, side, str(plain), None, score)
    assert skipped["baseline_ridge_class"] is None and "not class-conditional" in skipped["baseline_ridge_class_skipped"]
    assert skipped["baseline_ridge_clip"] is None and skipped["baseline_ridge_clip_skipped"]
    no_labels = B.TestSide(**{**side.__dict__, "labels": None})
    assert "no class labels" in B.run_baselines(train, no_labels, "builtin-tiny", None, score)[
        "baseline_ridge_class_skipped"]


def test_fewer_pairs_keeps_whole_images_per_class_and_is_seeded(bench):
    from dreamdiffusion.data.pairs import keep_fraction_of_images

    train = synthetic.SyntheticPairs(bench, "train")
    assert keep_fraction_of_images(train, 1.0, seed=0) is train
    sub = keep_fraction_of_images(train, 0.25, seed=0)
    keys = train.image_keys()
    kept = {keys[i][0] for i in sub.indices}
    # every trial of a kept image, none of the others; about a quarter of each class's images
    assert all((keys[i][0] in kept) == (i in set(sub.indices)) for i in range(len(train)))
    for label in range(10):
        n_all = len({k for k, lab in keys if lab == label})
        assert len({k for k, lab in keys if lab == label and k in kept}) == max(1, round(0.25 * n_all))
    assert sub.sfreq == train.sfreq and sub[0]["image_name"] in kept  # still answers for its dataset
    assert torch.equal(sub.eeg(1), sub[1]["eeg"])  # its item i's EEG alone, not the dataset's item i
    assert keep_fraction_of_images(train, 0.25, seed=0).indices == sub.indices
    assert keep_fraction_of_images(train, 0.25, seed=1).indices != sub.indices
    pairs = B.load_train_pairs("synthetic", {"root": str(bench)}, fraction=0.25, seed=0)
    assert set(pairs.image_ids) == kept
    # Stage B draws the same subset from the same seed; val stays whole
    from dreamdiffusion.training.finetune_config import FinetuneConfig
    from dreamdiffusion.training.stageb import open_datasets

    tr, val = open_datasets(FinetuneConfig(dataset="synthetic", dataset_options={"root": str(bench)},
                                           train_fraction=0.25, seed=0))
    assert tr.indices == sub.indices and len(val) == len(synthetic.SyntheticPairs(bench, "val"))


def test_lda_separates_classes_under_correlated_noise():
    # three classes on a line with correlated noise: the discriminant whitens the noise and separates them; both
    # take string labels back, as the ridge does
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 3, n)
    noise = rng.standard_normal((n, 1)) @ np.ones((1, 20)) * 3.0 + 0.3 * rng.standard_normal((n, 20))
    x = noise + np.outer(y, np.linspace(-1, 1, 20))
    model = B.fit_lda(x[:400], y[:400])
    pred = model.predict(x[400:])
    assert set(pred) <= {"0", "1", "2"}
    assert np.mean(pred == y[400:].astype(str)) > 0.9
