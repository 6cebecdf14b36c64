"""Evaluation metrics of DreamDiffusion, as pure functions on arrays and tensors.

The protocols follow the paper's code (inherited verbatim from MinD-Vis):

- **n-way top-1 semantic accuracy** (:func:`n_way_top_k_accuracy`, :func:`semantic_accuracy`): an image
  classifier's argmax on the *ground-truth* image defines the class; each generated image is scored against
  ``n_way - 1`` randomly drawn other classes of the classifier's label set, over ``num_trials`` trials. Chance is
  ``1 / n_way``. The paper reports the mean over the generated samples; MinD-Vis also has a "max over samples"
  variant (the best sample slot), reported here as ``top1_accuracy_max``.
- **zero-shot retrieval** (:func:`retrieval_accuracy`): EEG embeddings (the CLIP head) against the CLIP image
  embeddings of the test images; all test images are candidates (200-way on THINGS-EEG2's 200 test concepts), or
  ``n_way`` drawn at random per trial.
- **SSIM and PCC** (:func:`ssim`, :func:`pcc`, computed in :mod:`dreamdiffusion.evaluation.pixels`), raw and as **2-way pairwise identification**
  (:func:`pairwise_identification`): for each generated image, the share of the *other* ground-truth images that
  score worse against it than its own ground truth (MinD-Vis ``pair_wise_score``).
- **within-class 2-way identification** (:func:`within_class_identification`): the same, against the other
  ground truths *of the own class* only (ties count half), so a class lookup scores 0.5 and only decoding beyond
  the class scores more; the n-way top-1 alone cannot tell decoding from a class lookup.
- **FID and IS** (:func:`fid_and_is`) through torchmetrics, only if the Inception weights are already on disk.

Ties are counted against the model (a distractor that scores exactly as high as the truth wins), so a
constant classifier or constant embeddings score 0, never 1; the within-class 2-way alone counts them as half,
so that its chance level, 0.5, is exactly what a class lookup gets.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dreamdiffusion.evaluation.pixels import (  # noqa: F401  (re-exported: callers use metrics.ssim & co.)
    SSIM_K1,
    SSIM_K2,
    SSIM_WIN_SIZE,
    pcc,
    pcc_matrix,
    ssim,
    ssim_matrix,
    to_uint8_array,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------------
# n-way top-k semantic accuracy
# --------------------------------------------------------------------------------------------------------------

def default_n_way(n_classes: int, requested: int = 50) -> int:
    """The paper's 50-way, capped by the judge's label set (a 10-class judge allows at most 10-way)."""
    return int(min(requested, n_classes))


def n_way_top_k_accuracy(
    scores: torch.Tensor,
    true_classes: torch.Tensor,
    n_way: int,
    num_trials: int = 50,
    top_k: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image hit rate of the n-way top-k test.

    Parameters
    ----------
    scores : [N, K] float
        The classifier's logits (or probabilities: only the order matters) on N generated images.
    true_classes : [N] int
        The class of each generated image's ground truth (the classifier's argmax on the ground-truth image).
    n_way : int
        Candidates per trial: the true class plus ``n_way - 1`` distinct other classes drawn uniformly.
    num_trials : int
        Independent draws of distractors per image.
    top_k : int
        A trial is a hit when fewer than ``top_k`` distractors score at least as high as the true class.

    Returns
    -------
    [N] float tensor: the share of trials that were hits, for each image.
    """
    scores = torch.as_tensor(scores, dtype=torch.float64)
    true_classes = torch.as_tensor(true_classes, dtype=torch.long)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [N, K], got shape {tuple(scores.shape)}")
    n_images, n_classes = scores.shape
    if true_classes.shape != (n_images,):
        raise ValueError(f"true_classes must be [{n_images}], got shape {tuple(true_classes.shape)}")
    if not 2 <= n_way <= n_classes:
        raise ValueError(f"n_way must be between 2 and the number of classes ({n_classes}), got {n_way}")
    if num_trials < 1 or top_k < 1:
        raise ValueError("num_trials and top_k must be at least 1")
    if n_images == 0:
        return torch.zeros(0, dtype=torch.float64)

    true_score = scores.gather(1, true_classes[:, None])  # [N, 1]
    hits = torch.zeros(n_images, dtype=torch.float64)
    # Draw distractors by ranking random keys; the true class gets +inf so it is never drawn. One trial at a time
    # keeps memory at [N, K] even for 1000 ImageNet classes and many images.
    for _ in range(num_trials):
        keys = torch.rand(n_images, n_classes, generator=generator, dtype=torch.float64)
        keys.scatter_(1, true_classes[:, None], float("inf"))
        distractors = keys.argsort(dim=1)[:, : n_way - 1]  # [N, n_way-1]
        beaten_by = (scores.gather(1, distractors) >= true_score).sum(dim=1)  # [N]
        hits += (beaten_by < top_k).double()
    return hits / num_trials


def semantic_accuracy(
    gen_scores: torch.Tensor,
    gt_scores: torch.Tensor,
    n_way: int,
    num_trials: int = 50,
    top_k: int = 1,
    generator: torch.Generator | None = None,
) -> dict:
    """The paper's n-way top-k accuracy over N ground truths with S generated samples each.

    Parameters
    ----------
    gen_scores : [N, S, K]
        Classifier scores of the generated images (S samples per EEG).
    gt_scores : [N, K]
        Classifier scores of the ground-truth images; their argmax defines the class (MinD-Vis protocol).

    Returns
    -------
    dict with ``top{k}_accuracy`` (mean over images and sample slots: the paper's number),
    ``top{k}_accuracy_max`` (the best sample slot's mean: MinD-Vis' "max" variant), ``chance`` (k / n_way),
    ``n_way``, ``num_trials``, ``per_slot`` (mean per sample slot) and ``per_image`` (mean per ground truth).
    """
    gen_scores = torch.as_tensor(gen_scores, dtype=torch.float64)
    gt_scores = torch.as_tensor(gt_scores, dtype=torch.float64)
    if gen_scores.ndim != 3 or gt_scores.ndim != 2 or gen_scores.shape[0] != gt_scores.shape[0] \
            or gen_scores.shape[2] != gt_scores.shape[1]:
        raise ValueError(f"expected gen_scores [N, S, K] and gt_scores [N, K], got {tuple(gen_scores.shape)} "
                         f"and {tuple(gt_scores.shape)}")
    n, s, k = gen_scores.shape
    true_classes = gt_scores.argmax(dim=1)
    hits = n_way_top_k_accuracy(gen_scores.reshape(n * s, k), true_classes.repeat_interleave(s),
                                n_way=n_way, num_trials=num_trials, top_k=top_k, generator=generator)
    hits = hits.reshape(n, s)
    per_slot = hits.mean(dim=0)
    return {
        f"top{top_k}_accuracy": float(hits.mean()) if hits.numel() else 0.0,
        f"top{top_k}_accuracy_max": float(per_slot.max()) if per_slot.numel() else 0.0,
        "chance": min(1.0, top_k / n_way),
        "n_way": int(n_way),
        "num_trials": int(num_trials),
        "per_slot": per_slot.tolist(),
        "per_image": hits.mean(dim=1).tolist(),
    }


def classification_accuracy(scores: torch.Tensor, labels: Sequence[int]) -> float:
    """Plain top-1 accuracy of a classifier against known labels (the judge's own accuracy on real images)."""
    scores = torch.as_tensor(scores)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if len(labels) == 0:
        return 0.0
    return float((scores.argmax(dim=1) == labels).double().mean())


# --------------------------------------------------------------------------------------------------------------
# zero-shot retrieval
# --------------------------------------------------------------------------------------------------------------

def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, D] x [M, D] -> [N, M] cosine similarities (in float64 so that ties are real ties)."""
    a = torch.nn.functional.normalize(torch.as_tensor(a, dtype=torch.float64), dim=-1)
    b = torch.nn.functional.normalize(torch.as_tensor(b, dtype=torch.float64), dim=-1)
    return a @ b.T


def own_targets(n: int, m: int, targets: Sequence[int] | None = None) -> torch.Tensor:
    """Which of ``m`` candidates (ground-truth images) belongs to each of ``n`` queries: ``[n]`` indices.

    None means one candidate per query, in order (``n == m``). Several queries may share a candidate: repeated
    trials of one image are scored against the *distinct* images, so a copy of the own image never competes.
    """
    if targets is None:
        if n != m:
            raise ValueError(f"queries and candidates must pair one to one without targets, got {n} and {m}")
        return torch.arange(n)
    t = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    if t.shape != (n,) or (n and (int(t.min()) < 0 or int(t.max()) >= m)):
        raise ValueError(f"targets must be {n} indices into {m} candidates")
    return t


def retrieval_accuracy(
    query: torch.Tensor,
    candidates: torch.Tensor,
    top_k: Sequence[int] = (1, 5),
    n_way: int | None = None,
    num_trials: int = 50,
    generator: torch.Generator | None = None,
    targets: Sequence[int] | None = None,
) -> dict:
    """Zero-shot retrieval: does query i (an EEG embedding) find its own candidate (its image's embedding)?

    ``candidates`` are the distinct images; ``targets[i]`` is query i's (default: candidate i). With ``n_way``
    None (or >= the number of candidates) every candidate competes (THINGS-EEG2's 200-way protocol uses its 200
    test images); otherwise each trial draws ``n_way - 1`` other candidates at random. Returns
    ``retrieval_top{k}`` for each k, ``retrieval_n_way`` and ``retrieval_chance_top1``.
    """
    way, hits = retrieval_hits(query, candidates, top_k, n_way, num_trials, generator, targets)
    out: dict = {"retrieval_n_way": way, "retrieval_chance_top1": 1.0 / way}
    for k in top_k:
        out[f"retrieval_top{k}"] = float(hits[k].mean())
    return out


def retrieval_hits(query: torch.Tensor, candidates: torch.Tensor, top_k: Sequence[int] = (1, 5),
                   n_way: int | None = None, num_trials: int = 50, generator: torch.Generator | None = None,
                   targets: Sequence[int] | None = None) -> tuple[int, dict[int, np.ndarray]]:
    """:func:`retrieval_accuracy` per query: ``(n-way, {k: [N] share of the trials where query i's own candidate
    is in the top k})`` (0 or 1 when every candidate competes). The same generator draws the same trials, so the
    mean of each row vector is ``retrieval_accuracy``'s number."""
    sims = cosine_similarity_matrix(query, candidates)  # [N, M]
    n, m = sims.shape
    t = own_targets(n, m, targets)
    if m < 2 or n < 1:
        raise ValueError("retrieval needs at least 2 candidates and 1 query")
    rows = torch.arange(n)
    own = sims[rows, t][:, None]
    # beats[i, j]: candidate j (not i's own) scores at least as high as the own candidate (ties count against).
    beats = sims >= own
    beats[rows, t] = False
    way = m if n_way is None or n_way >= m else int(n_way)
    if way < 2:
        raise ValueError(f"n_way must be at least 2, got {n_way}")
    if way == m:
        rank = beats.sum(dim=1)  # how many others beat the truth
        return way, {k: (rank < k).double().numpy() for k in top_k}
    totals = {k: torch.zeros(n, dtype=torch.float64) for k in top_k}
    for _ in range(num_trials):
        keys = torch.rand(n, m, generator=generator, dtype=torch.float64)
        keys[rows, t] = float("inf")
        distractors = keys.argsort(dim=1)[:, : way - 1]
        rank = beats.gather(1, distractors).sum(dim=1)
        for k in top_k:
            totals[k] += (rank < k).double()
    return way, {k: (totals[k] / num_trials).numpy() for k in top_k}


def paired_bootstrap(method: Sequence[float], baseline: Sequence[float], groups: Sequence[int],
                     n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """How far a method's mean score is above a baseline's on the same test rows, with a bootstrap interval.

    ``method[i]``, ``baseline[i]``: the two scores of test row i (NaN rows are left out); ``groups[i]``: the
    unit rows are drawn by. Repeated EEG trials of one image are not independent, so whole images are resampled
    with replacement (the cluster bootstrap), and both scores move together (paired): the interval is that of the
    *difference*, far narrower than the two scores' own intervals when they err on the same rows. Returns
    ``difference`` (method mean - baseline mean over the kept rows), ``low`` and ``high`` (the percentile
    interval at ``level``), ``n_groups`` and ``n_boot``.
    """
    a, b = np.asarray(method, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    g = np.asarray(groups)
    if not (a.shape == b.shape == g.shape) or a.ndim != 1:
        raise ValueError(f"paired bootstrap needs three [N] vectors, got {a.shape}, {b.shape} and {g.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    if not keep.any():
        raise ValueError("paired bootstrap: no row has both scores")
    _, index = np.unique(g[keep], return_inverse=True)
    n_groups = int(index.max()) + 1
    diff_sum = np.bincount(index, weights=a[keep] - b[keep], minlength=n_groups)
    count = np.bincount(index, minlength=n_groups).astype(np.float64)
    # each draw: how often each image is picked (a multinomial over the images), then the pooled row mean
    picks = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    draws = (picks @ diff_sum) / np.maximum(picks @ count, 1.0)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return {"difference": float(diff_sum.sum() / count.sum()), "low": float(low), "high": float(high),
            "n_groups": n_groups, "n_boot": int(n_boot)}


# --------------------------------------------------------------------------------------------------------------
# low-level image similarity: SSIM, PCC, pairwise identification
# --------------------------------------------------------------------------------------------------------------

def pairwise_identification(score_matrix: np.ndarray, higher_is_better: bool = True,
                            targets: Sequence[int] | None = None) -> np.ndarray:
    """2-way identification from a [N, M] score matrix (row i = generated image i, column j = ground truth j).

    For each i: the share of the other ground truths (all but ``targets[i]``, default i) that score strictly
    worse than the own one; MinD-Vis' ``pair_wise_score``. Chance is 0.5. Returns [N].
    """
    m = np.asarray(score_matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2 or m.shape[0] < 1:
        raise ValueError(f"pairwise identification needs a matrix with at least 2 ground truths, got {m.shape}")
    n, k = m.shape
    t = own_targets(n, k, targets).numpy()
    rows = np.arange(n)
    own = m[rows, t][:, None]
    better = (m < own) if higher_is_better else (m > own)
    better[rows, t] = False
    return better.sum(axis=1) / (k - 1)


def within_class_identification(score_matrix: np.ndarray, classes: Sequence, higher_is_better: bool = True,
                                targets: Sequence[int] | None = None) -> np.ndarray:
    """2-way identification against the other ground truths *of the own class* only: ``[N]``, NaN where none.

    ``score_matrix [N, M]``: row i = generated image i (or a predicted embedding), column j = ground truth j;
    ``classes [M]``: each ground truth's class; ``targets [N]``: row i's own ground truth (default i). For each
    row: the share of the other ground truths of its own ground truth's class that score worse against it than
    the own one, **ties counted as half**. A class lookup (an output that depends on the class only) scores 0.5:
    exactly on average over a class whose ground truths are each some row's own equally often (the ranks of the
    own truth average out), in expectation when the output is drawn at random from the class; only what is
    decoded beyond the class moves it, and a perfect copy scores 1. (The all-classes 2-way counts ties against
    the model instead; an output equally far from every member of its class ties with all of them, and scoring
    that 0 would put a lookup below chance.) A row whose class has no other ground truth is NaN.
    """
    m = np.asarray(score_matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"within-class identification needs an [N, M] score matrix, got {m.shape}")
    n, k = m.shape
    cls = np.asarray(classes, dtype=object)
    if cls.shape != (k,):
        raise ValueError(f"classes must name the class of each of the {k} ground truths, got {cls.shape}")
    t = own_targets(n, k, targets).numpy()
    rows = np.arange(n)
    same = cls[None, :] == cls[t][:, None]  # [N, M]: ground truths of row i's own class
    same[rows, t] = False
    own = m[rows, t][:, None]
    better = (m < own) if higher_is_better else (m > own)
    ties = m == own
    wins = ((better + 0.5 * ties) * same).sum(axis=1)
    count = same.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, wins / np.maximum(count, 1), np.nan)


def clip_identification(embeds: torch.Tensor, truths: torch.Tensor, targets: Sequence[int] | None = None,
                        classes: Sequence | None = None) -> dict:
    """2-way identification in CLIP space: ``embeds [N, S, P]`` (S generated images per EEG, or ``[N, P]``) against
    the distinct truths ``[M, P]`` by cosine; mean over the S slots. ``classes`` (one per truth) adds the
    within-class 2-way. Returns ``clip_2way`` and, with classes, ``clip_within_class_2way``."""
    sims = _slot_similarities(embeds, truths)
    two_way = [pairwise_identification(sim, targets=targets).mean() for sim in sims] if truths.shape[0] >= 2 else []
    result = {"clip_2way": float(np.mean(two_way)) if two_way else None}
    if classes is not None:
        result["clip_within_class_2way"] = nan_mean(_within_class_rows(sims, classes, targets))
    return result


def clip_within_class_rows(embeds: torch.Tensor, truths: torch.Tensor, classes: Sequence,
                           targets: Sequence[int] | None = None) -> np.ndarray:
    """:func:`clip_identification`'s within-class 2-way per EEG: ``[N]``, the mean over the S slots (NaN where
    the own class has no other truth); its NaN-free mean is ``clip_within_class_2way``."""
    return _within_class_rows(_slot_similarities(embeds, truths), classes, targets)


def _slot_similarities(embeds: torch.Tensor, truths: torch.Tensor) -> list[np.ndarray]:
    """Cosine ``[N, M]`` of each sample slot of ``embeds [N, S, P]`` (or ``[N, P]``: one slot) against the truths."""
    e = torch.as_tensor(embeds)
    e = e[:, None] if e.ndim == 2 else e
    return [cosine_similarity_matrix(e[:, slot], truths).numpy() for slot in range(e.shape[1])]


def _within_class_rows(sims: list[np.ndarray], classes: Sequence, targets: Sequence[int] | None) -> np.ndarray:
    return np.mean([within_class_identification(sim, classes, targets=targets) for sim in sims], axis=0)


def nan_mean(values) -> float | None:
    """Mean of the finite values; None when there are none (no class had two ground truths)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None


def low_level_metrics(generated_per_eeg: Sequence[Sequence], ground_truth: Sequence,
                      targets: Sequence[int] | None = None, classes: Sequence | None = None,
                      with_ssim: bool = True) -> dict:
    """SSIM and PCC, raw and as 2-way identification, averaged over S samples per EEG.

    ``generated_per_eeg[i]`` holds the S generated images of EEG i, whose ground truth is
    ``ground_truth[targets[i]]`` (default: ``ground_truth[i]``; with repeated trials, ``ground_truth`` lists each
    distinct image once). Images are resized by the caller to the ground truth's size. ``classes`` (one per
    ground truth) adds ``ssim_within_class_2way`` and ``pcc_within_class_2way``
    (:func:`within_class_identification`). ``with_ssim`` False skips SSIM (its N x M matrix is the costly part).
    """
    gt = to_uint8_array(ground_truth)
    n, m = len(generated_per_eeg), len(gt)
    if n == 0 or m == 0:
        raise ValueError("need generated images and ground truths")
    t = own_targets(n, m, targets).numpy()
    rows = np.arange(n)
    n_samples = min(len(s) for s in generated_per_eeg)
    out = {"ssim": [], "pcc": [], "ssim_2way": [], "pcc_2way": []}
    within = {"ssim_within_class_2way": [], "pcc_within_class_2way": []}
    for slot in range(n_samples):
        gen = to_uint8_array([samples[slot] for samples in generated_per_eeg])
        mats = {"pcc": pcc_matrix(gen, gt), **({"ssim": ssim_matrix(gen, gt)} if with_ssim else {})}
        for name, mat in mats.items():
            out[name].append(mat[rows, t].mean())
            if m >= 2:
                out[f"{name}_2way"].append(pairwise_identification(mat, targets=t).mean())
            if classes is not None:
                within[f"{name}_within_class_2way"].append(within_class_identification(mat, classes, targets=t))
    result = {key: (float(np.mean(vals)) if vals else None) for key, vals in out.items()}
    if classes is not None:
        result.update({key: nan_mean(vals) for key, vals in within.items()})
    return result


# --------------------------------------------------------------------------------------------------------------
# FID and IS (only with local Inception weights)
# --------------------------------------------------------------------------------------------------------------

# torch-fidelity's Inception weights, as torchmetrics' FID/IS would download them into torch hub's cache.
FIDELITY_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def inception_weights_available() -> tuple[bool, str]:
    """Whether FID/IS can run without a download; otherwise the reason, worded for the report."""
    if importlib.util.find_spec("torchmetrics") is None:
        return False, "torchmetrics is not installed (pip install 'dreamdiffusion[eval]')"
    if importlib.util.find_spec("torch_fidelity") is None:
        return False, "torch-fidelity is not installed, so torchmetrics has no Inception network for FID/IS"
    weights = Path(torch.hub.get_dir()) / "checkpoints" / FIDELITY_INCEPTION_FILE
    if not weights.is_file():
        return False, f"the Inception weights are not on disk ({weights}); they are never downloaded here"
    return True, ""


def fid_and_is(generated, ground_truth) -> dict:
    """FID (generated vs ground truth) and IS of the generated images, or a ``fid_skipped`` reason.

    Runs only when torchmetrics, torch-fidelity and the Inception weights are all present locally: nothing is
    ever downloaded. With few images FID is biased upward; compare FIDs only at the same image count.
    """
    ok, reason = inception_weights_available()
    if not ok:
        logger.info("FID/IS skipped: %s", reason)
        return {"fid": None, "inception_score": None, "fid_skipped": reason}
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore

    gen = torch.from_numpy(to_uint8_array(generated)).permute(0, 3, 1, 2).contiguous()
    real = torch.from_numpy(to_uint8_array(ground_truth)).permute(0, 3, 1, 2).contiguous()
    fid = FrechetInceptionDistance(feature=2048)
    fid.update(real, real=True)
    fid.update(gen, real=False)
    inception = InceptionScore()
    inception.update(gen)
    is_mean, is_std = inception.compute()
    return {"fid": float(fid.compute()), "inception_score": float(is_mean), "inception_score_std": float(is_std),
            "fid_skipped": None}


__all__ = [
    "default_n_way", "n_way_top_k_accuracy", "semantic_accuracy", "classification_accuracy",
    "cosine_similarity_matrix", "retrieval_accuracy", "to_uint8_array", "ssim", "ssim_matrix", "pcc", "pcc_matrix",
    "pairwise_identification", "within_class_identification", "clip_identification", "clip_within_class_rows",
    "retrieval_hits", "paired_bootstrap", "nan_mean", "low_level_metrics", "inception_weights_available",
    "fid_and_is",
]
