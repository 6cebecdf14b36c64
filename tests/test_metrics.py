"""Metrics on cases with known answers (issue 4, Acceptance)."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from dreamdiffusion.evaluation import metrics as M


def _images(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


# ---------------------------------------------------------------- n-way semantic accuracy

def test_perfect_classifier_gives_accuracy_one():
    k, n, s = 10, 30, 3
    classes = torch.arange(n) % k
    gt_scores = torch.nn.functional.one_hot(classes, k).float() * 5
    gen_scores = gt_scores[:, None, :].repeat(1, s, 1)  # every sample classified as its ground truth
    out = M.semantic_accuracy(gen_scores, gt_scores, n_way=10, num_trials=20, generator=torch.Generator().manual_seed(0))
    assert out["top1_accuracy"] == 1.0
    assert out["top1_accuracy_max"] == 1.0
    assert out["chance"] == pytest.approx(0.1)


def test_always_wrong_classifier_gives_zero_at_full_way():
    k = 10
    classes = torch.arange(20) % k
    gt_scores = torch.nn.functional.one_hot(classes, k).float()
    gen_scores = torch.nn.functional.one_hot((classes + 1) % k, k).float()[:, None, :]
    out = M.semantic_accuracy(gen_scores, gt_scores, n_way=k, num_trials=5)
    assert out["top1_accuracy"] == 0.0


@pytest.mark.parametrize("n_way,k", [(2, 10), (5, 10), (10, 10), (50, 1000)])
def test_random_scores_give_about_one_over_n(n_way, k):
    g = torch.Generator().manual_seed(1)
    gen_scores = torch.rand(400, 2, k, generator=g)
    gt_scores = torch.rand(400, k, generator=g)
    out = M.semantic_accuracy(gen_scores, gt_scores, n_way=n_way, num_trials=50, generator=g)
    assert out["top1_accuracy"] == pytest.approx(1 / n_way, abs=0.02)
    assert out["chance"] == pytest.approx(1 / n_way)


def test_constant_scores_count_ties_against_the_model():
    out = M.semantic_accuracy(torch.zeros(5, 1, 10), torch.rand(5, 10), n_way=10, num_trials=3)
    assert out["top1_accuracy"] == 0.0


def test_max_variant_is_best_sample_slot():
    k = 10
    classes = torch.arange(10)
    gt = torch.nn.functional.one_hot(classes, k).float()
    right = gt
    wrong = torch.nn.functional.one_hot((classes + 1) % k, k).float()
    gen = torch.stack([wrong, right, wrong], dim=1)  # only slot 1 is right
    out = M.semantic_accuracy(gen, gt, n_way=10, num_trials=4)
    assert out["top1_accuracy"] == pytest.approx(1 / 3)
    assert out["top1_accuracy_max"] == 1.0
    assert out["per_slot"] == [0.0, 1.0, 0.0]


def test_distractors_are_distinct_and_exclude_truth():
    # With n_way == K every other class is drawn exactly once: a truth that beats all but one class (second
    # place) is a hit for top-2 and a miss for top-1, in every trial.
    k = 6
    scores = torch.tensor([[0.0, 1.0, 2.0, 3.0, 5.0, 4.0]])  # class 5 is second
    assert M.n_way_top_k_accuracy(scores, torch.tensor([5]), n_way=k, num_trials=10, top_k=1).item() == 0.0
    assert M.n_way_top_k_accuracy(scores, torch.tensor([5]), n_way=k, num_trials=10, top_k=2).item() == 1.0


def test_same_generator_seed_gives_same_accuracy():
    gen = torch.rand(50, 2, 20, generator=torch.Generator().manual_seed(3))
    gt = torch.rand(50, 20, generator=torch.Generator().manual_seed(4))
    a = M.semantic_accuracy(gen, gt, 5, 10, generator=torch.Generator().manual_seed(7))
    b = M.semantic_accuracy(gen, gt, 5, 10, generator=torch.Generator().manual_seed(7))
    assert a == b


def test_n_way_bounds_are_checked():
    with pytest.raises(ValueError, match="n_way"):
        M.n_way_top_k_accuracy(torch.rand(3, 10), torch.zeros(3, dtype=torch.long), n_way=11)
    assert M.default_n_way(10) == 10
    assert M.default_n_way(1000) == 50


# ---------------------------------------------------------------- retrieval

def test_identical_embeddings_retrieve_top1():
    emb = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))
    out = M.retrieval_accuracy(emb, emb.clone())
    assert out["retrieval_top1"] == 1.0 and out["retrieval_top5"] == 1.0
    assert out["retrieval_n_way"] == 40
    out = M.retrieval_accuracy(emb, emb.clone(), n_way=10, num_trials=5)
    assert out["retrieval_top1"] == 1.0 and out["retrieval_n_way"] == 10


def test_random_embeddings_retrieve_at_chance():
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(200, 32, generator=g), torch.randn(200, 32, generator=g)
    out = M.retrieval_accuracy(q, c, top_k=(1, 5), n_way=10, num_trials=100, generator=g)
    assert out["retrieval_top1"] == pytest.approx(0.1, abs=0.03)
    assert out["retrieval_top5"] == pytest.approx(0.5, abs=0.05)


def test_retrieval_rank_counts_exactly():
    # Query 0 matches candidate 1 better than its own candidate 0; everybody else is perfect.
    cand = torch.eye(4)
    query = torch.eye(4)
    query[0] = torch.tensor([0.6, 0.8, 0.0, 0.0])
    out = M.retrieval_accuracy(query, cand, top_k=(1, 2))
    assert out["retrieval_top1"] == pytest.approx(3 / 4)
    assert out["retrieval_top2"] == 1.0


# ---------------------------------------------------------------- SSIM / PCC

def test_identical_images_give_ssim_one_and_pcc_one():
    imgs = _images(5)
    assert np.allclose(M.ssim(imgs, imgs), 1.0)
    assert np.allclose(M.pcc(imgs, imgs), 1.0)


def test_batched_ssim_equals_skimage():
    a, b = _images(4, size=20, seed=1), _images(4, size=20, seed=2)
    b[:2] = np.clip(a[:2].astype(int) + 30, 0, 255).astype(np.uint8)  # some similar pairs too
    ours = M.ssim(a, b)
    ref = [structural_similarity(x, y, data_range=255, channel_axis=-1) for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)


def test_pcc_matches_numpy_corrcoef():
    a, b = _images(3, seed=3), _images(3, seed=4)
    ref = [np.corrcoef(x.reshape(-1).astype(float), y.reshape(-1).astype(float))[0, 1] for x, y in zip(a, b)]
    np.testing.assert_allclose(M.pcc(a, b), ref, rtol=1e-10)
    assert M.pcc(np.zeros((1, 16, 16, 3), np.uint8), a[:1])[0] == 0.0  # constant image: defined as 0


def test_pairwise_identification_known_answers():
    m = np.array([[1.0, 0.5, 0.2], [0.9, 0.8, 0.1], [0.1, 0.9, 0.3]])
    # row 0: own 1.0 beats both; row 1: own 0.8 beats 0.1 only; row 2: own 0.3 beats 0.1 only
    np.testing.assert_allclose(M.pairwise_identification(m), [1.0, 0.5, 0.5])
    np.testing.assert_allclose(M.pairwise_identification(m, higher_is_better=False), [0.0, 0.5, 0.5])


def test_low_level_metrics_perfect_and_random():
    gt = _images(6, seed=5)
    perfect = M.low_level_metrics([[img, img] for img in gt], gt)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["pcc"] == pytest.approx(1.0)
    assert perfect["ssim_2way"] == 1.0 and perfect["pcc_2way"] == 1.0
    noise = _images(6, seed=6)
    rand = M.low_level_metrics([[img] for img in noise], gt)
    assert abs(rand["ssim"]) < 0.1 and abs(rand["pcc"]) < 0.1


def test_fid_is_skipped_without_local_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    out = M.fid_and_is(_images(2), _images(2, seed=1))
    assert out["fid"] is None and out["inception_score"] is None
    assert out["fid_skipped"]


def test_ssim_matrix_matches_skimage_pairwise():
    g, t = _images(3, size=12, seed=7), _images(4, size=12, seed=8)
    m = M.ssim_matrix(g, t)
    ref = np.array([[structural_similarity(x, y, data_range=255, channel_axis=-1) for y in t] for x in g])
    np.testing.assert_allclose(m, ref, rtol=1e-10, atol=1e-12)



def test_ssim_matrix_blocks_and_reused_buffers_agree():
    """Any split into blocks of generated images and bands of window rows (a partial last block, buffers reused
    at a smaller size) gives the one-pass matrix."""
    g, t = _images(7, size=12, seed=3), _images(5, size=12, seed=4)
    whole = M.ssim_matrix(g, t, budget=10**9)
    for budget in (1, 150, 700, 3000):
        np.testing.assert_allclose(M.ssim_matrix(g, t, budget=budget), whole, rtol=0, atol=1e-13)
    ref = np.array([[structural_similarity(x, y, data_range=255, channel_axis=-1) for y in t] for x in g])
    np.testing.assert_allclose(whole, ref, rtol=1e-10, atol=1e-12)

def test_repeated_trials_are_scored_against_distinct_images():
    """4 EEG trials per image: each query must find its image among the 3 distinct ones; a copy of its own
    image is not a competitor (with copies among the candidates, ties would make a perfect model score 0)."""
    images = torch.randn(3, 8)
    targets = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    queries = images[targets]
    r = M.retrieval_accuracy(queries, images, top_k=(1,), targets=targets)
    assert r["retrieval_top1"] == 1.0 and r["retrieval_n_way"] == 3
    copies = M.retrieval_accuracy(queries, queries, top_k=(1,))  # the old protocol: one candidate per trial
    assert copies["retrieval_top1"] == 0.0
    # a query that matches another image's embedding fails
    wrong = M.retrieval_accuracy(images[[1, 2, 0]], images, top_k=(1,), targets=[0, 1, 2])
    assert wrong["retrieval_top1"] == 0.0
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.1, 0.7, 0.4], [0.1, 0.2, 0.3]])
    # row 0 (own 0): beats both others; row 1 (own 2): both; row 2 (own 1): both; row 3 (own 1): beats one of two
    assert M.pairwise_identification(scores, targets=[0, 2, 1, 1]).tolist() == [1.0, 1.0, 1.0, 0.5]
    with pytest.raises(ValueError, match="targets"):
        M.pairwise_identification(scores, targets=[0, 3, 1, 1])


def test_low_level_metrics_with_repeated_trials():
    rng = np.random.default_rng(0)
    gt = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    targets = [0, 1, 2, 0, 1, 2]
    perfect = M.low_level_metrics([[gt[t]] for t in targets], gt, targets=targets)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["ssim_2way"] == 1.0 and perfect["pcc_2way"] == 1.0


def test_within_class_identification_known_answers():
    """A perfect copy scores 1; a class lookup (one output per class) 0.5; only same-class truths compete."""
    rng = np.random.default_rng(0)
    truths = rng.standard_normal((6, 8))
    classes = ["a", "a", "a", "b", "b", "c"]
    copy = M.cosine_similarity_matrix(torch.as_tensor(truths), torch.as_tensor(truths)).numpy()
    out = M.within_class_identification(copy, classes)
    np.testing.assert_allclose(out[:5], 1.0)
    assert np.isnan(out[5])  # class c has no other truth
    # a lookup: every EEG of class k gets the same output (a class prototype), whatever member of k was seen.
    # Each truth of k is then some EEG's own truth once, so the ranks average to exactly 0.5 within each class.
    for trial in range(3):
        prototypes = {k: rng.standard_normal(8) for k in sorted(set(classes))}
        lookup = np.stack([prototypes[k] for k in classes])
        sims = M.cosine_similarity_matrix(torch.as_tensor(lookup), torch.as_tensor(truths)).numpy()
        out = M.within_class_identification(sims, classes)
        assert out[:3].mean() == pytest.approx(0.5) and out[3:5].mean() == pytest.approx(0.5)
    # with exact ties (an output equally far from every member, e.g. pixels of a blank image) each row is 0.5
    np.testing.assert_allclose(M.within_class_identification(np.zeros((6, 6)), classes)[:5], 0.5)
    # only the own class counts: row 0 loses to every truth of class b but beats its own class
    m = np.array([[0.5, 0.1, 0.2, 0.9, 0.9, 0.9]])
    assert M.within_class_identification(m, classes, targets=[0]).tolist() == [1.0]
    assert M.pairwise_identification(m, targets=[0]).tolist() == [0.4]
    # lower is better (distances), and repeated trials against distinct truths
    d = np.array([[0.1, 0.3, 0.3], [0.2, 0.1, 0.05]])
    np.testing.assert_allclose(M.within_class_identification(d, [0, 0, 0], higher_is_better=False, targets=[0, 1]),
                               [1.0, 0.5])
    assert M.nan_mean([np.nan, 1.0, 0.5]) == 0.75 and M.nan_mean([np.nan]) is None


def test_within_class_lookup_of_random_class_members_is_near_half():
    """Images drawn at random from the right class (a lookup with fresh noise) score ~0.5 in pixels too."""
    rng = np.random.default_rng(1)
    classes = np.repeat(np.arange(4), 10)
    prototypes = rng.integers(0, 200, (4, 16, 16, 3))
    truths = [np.clip(prototypes[k] + rng.integers(0, 50, (16, 16, 3)), 0, 255).astype(np.uint8) for k in classes]
    drawn = [[np.clip(prototypes[k] + rng.integers(0, 50, (16, 16, 3)), 0, 255).astype(np.uint8)] for k in classes]
    out = M.low_level_metrics(drawn, truths, classes=list(classes))
    assert abs(out["pcc_within_class_2way"] - 0.5) < 0.1 and abs(out["ssim_within_class_2way"] - 0.5) < 0.1
    assert out["pcc_2way"] > 0.6  # across classes the same images look identified: the class alone does that
    perfect = M.low_level_metrics([[t] for t in truths], truths, classes=list(classes))
    assert perfect["pcc_within_class_2way"] == 1.0 and perfect["ssim_within_class_2way"] == 1.0


def test_paired_bootstrap_resamples_whole_images_and_holds_the_difference():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(50), 4)  # 50 images, 4 trials each
    base = rng.random(200)
    # the same scores on both sides: no difference and an interval of width 0
    same = M.paired_bootstrap(base, base, groups, n_boot=300)
    assert same["difference"] == 0.0 and same["low"] == same["high"] == 0.0 and same["n_groups"] == 50
    # a shift of 0.1 on every row: exactly 0.1, whatever is drawn
    shifted = M.paired_bootstrap(base + 0.1, base, groups, n_boot=300)
    assert shifted["difference"] == pytest.approx(0.1) and shifted["low"] == pytest.approx(0.1)
    # noise per image: the interval holds the true 0 about 95 % of the time; here wide and across 0
    noise = np.repeat(rng.standard_normal(50), 4)
    noisy = M.paired_bootstrap(base + noise, base, groups, n_boot=1000, seed=3)
    assert noisy["low"] < noisy["difference"] < noisy["high"] and noisy["low"] < 0 < noisy["high"]
    # trials of one image move together: resampled by image the interval is wider than resampled by trial
    by_trial = M.paired_bootstrap(base + noise, base, np.arange(200), n_boot=1000, seed=3)
    assert noisy["high"] - noisy["low"] > 1.5 * (by_trial["high"] - by_trial["low"])
    # NaN rows (a class with one image) are left out of both sides
    with_nan = np.where(np.arange(200) < 4, np.nan, base + 0.1)
    assert M.paired_bootstrap(with_nan, base, groups, n_boot=100)["n_groups"] == 49
    with pytest.raises(ValueError, match="three"):
        M.paired_bootstrap(base, base[:10], groups)


def test_retrieval_hits_are_retrieval_accuracy_per_query():
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(30, 8), torch.randn(12, 8)
    targets = [i % 12 for i in range(30)]
    for n_way in (None, 5):
        out = M.retrieval_accuracy(q, c, top_k=(1, 5), n_way=n_way, num_trials=9, targets=targets,
                                   generator=torch.Generator().manual_seed(4))
        way, hits = M.retrieval_hits(q, c, top_k=(1, 5), n_way=n_way, num_trials=9, targets=targets,
                                     generator=torch.Generator().manual_seed(4))
        assert way == out["retrieval_n_way"] and hits[1].shape == (30,)
        assert hits[1].mean() == pytest.approx(out["retrieval_top1"]) and hits[5].mean() == pytest.approx(
            out["retrieval_top5"])
    assert set(np.unique(M.retrieval_hits(q, c, top_k=(1,), targets=targets, generator=g)[1][1])) <= {0.0, 1.0}
