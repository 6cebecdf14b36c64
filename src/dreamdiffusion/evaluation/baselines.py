"""Baselines beside every evaluation: what trivial decoders of the same EEG reach on the same test split.

A score of the method means little alone: on the built-in benchmark a linear decoder plus a lookup beats a
badly trained generator. ``evaluate`` (and so the demo) therefore computes, from the **train** split of the same
dataset, and writes beside the method's numbers:

- ``chance``: ``1 / n_way`` of the semantic accuracy, ``1 / n`` and ``5 / n`` of the retrieval, 0.5 of every
  2-way identification (these sit beside each metric already).
- ``baseline_ridge_class``: a ridge classifier on the binned train EEG predicts each test EEG's class; the base
  model draws that class from **its own class conditioning** (the "text encoder output" it was trained on:
  ``class_embeddings.safetensors`` of ``builtin-tiny``), with the method's sampler, steps, guidance and noise
  seeds; the same judge scores the images. Only where the base is class-conditional. It is a class lookup by
  construction, so its within-class 2-way sits at 0.5: what the method gets above that is decoded beyond the class.
  Beside it, ``lda_eeg_accuracy``: shrinkage LDA's accuracy on the same features (:func:`fit_lda`), the stronger
  simple decoder of the class (no images drawn: a lookup through it would score about that).
- ``baseline_ridge_clip``: ridge regression from the binned train EEG to the CLIP image embedding of the image
  seen; each test EEG's predicted embedding -> retrieval top-1/top-5 against the distinct test images and
  within-class 2-way in CLIP space: the same protocol as the method's CLIP head.

Ridge penalties are chosen on the train split alone, holding out all trials of an image together
(:class:`~dreamdiffusion.core.ridge.RidgeSearch`); the test split is only scored.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from dreamdiffusion.core.discriminant import N_BINS, fit_lda
from dreamdiffusion.core.ridge import RidgeSearch
from dreamdiffusion.core.seeding import sample_seed
from dreamdiffusion.data.pairs import keep_fraction_of_images, open_paired_dataset
from dreamdiffusion.data.transforms import binned_means
from dreamdiffusion.evaluation import metrics as M
from dreamdiffusion.models import hub
from dreamdiffusion.models.hub import class_conditioning
from dreamdiffusion.pipeline import make_scheduler

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- train data

@dataclass
class TrainPairs:
    """The train split as a linear decoder sees it: binned EEG features, labels, and which image each trial saw."""

    features: np.ndarray  # [N, C * N_BINS] float32
    labels: list | None  # dataset label of each trial (None: the dataset has none)
    image_ids: list  # image of each trial (its file name, else its index)
    images: dict = field(default_factory=dict)  # image id -> PIL image, each distinct image once


def eeg_feature_matrix(eegs: Sequence, n_bins: int = N_BINS) -> np.ndarray:
    """EEG windows ``[C, T]`` -> time-binned means ``[N, C * n_bins]`` (float32)."""
    if not len(eegs):
        return np.zeros((0, 0), np.float32)
    return binned_means(np.stack([np.asarray(e, dtype=np.float32) for e in eegs]), n_bins).astype(np.float32)


def load_train_pairs(dataset: str, options: dict, split: str = "train", limit: int | None = None,
                     fraction: float = 1.0, seed: int = 0) -> TrainPairs:
    """Features, labels and distinct images of ``split`` (binned item by item: the raw EEG is never all in memory).

    ``fraction`` < 1 keeps that share of its images, drawn with ``seed`` as ``finetune --train-fraction`` draws them.
    """
    ds = keep_fraction_of_images(open_paired_dataset(dataset, split, **options), fraction, seed)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    feats, labels, ids, images = [], [], [], {}
    for i in range(n):
        item = ds[i]
        feats.append(binned_means(np.asarray(item["eeg"], dtype=np.float32)[None], N_BINS)[0])
        labels.append(item.get("label"))
        key = item.get("image_name", i)
        ids.append(key)
        if key not in images and item.get("image") is not None:
            images[key] = item["image"]
    if not feats:
        raise ValueError(f"the {split!r} split of {dataset!r} is empty")
    return TrainPairs(features=np.stack(feats).astype(np.float32),
                      labels=None if any(lab is None for lab in labels) else labels, image_ids=ids, images=images)


# ----------------------------------------------------------------------------------------------- CLIP scores

def ridge_clip_scores(pred: torch.Tensor, truth: torch.Tensor, targets: Sequence[int], classes: Sequence | None,
                      n_way: int | None = None, trials: int = 50, seed: int = 0) -> dict:
    """Predicted CLIP embeddings ``[N, P]`` scored as the method's CLIP head is: retrieval top-1/top-5 against the
    distinct truths ``[M, P]`` (``targets[i]``: EEG i's), 2-way and, given the truths' ``classes``, within-class 2-way
    in CLIP space (cosine)."""
    out = M.retrieval_accuracy(pred, truth, top_k=(1, 5), n_way=n_way, num_trials=trials,
                               generator=torch.Generator().manual_seed(int(seed) + 1), targets=targets)
    out["retrieval_chance_top5"] = min(1.0, 5 / out["retrieval_n_way"])
    out.update(M.clip_identification(pred, truth, targets=targets, classes=classes))
    return out


# ----------------------------------------------------------------------------------------------- class lookup

@torch.no_grad()
def class_lookup_images(base: str, classes: Sequence[int], num_images: int, steps: int, guidance: float, seed: int,
                        scheduler_config: dict | None = None, batch_size: int = 64, device: str | torch.device = "cpu",
                        indices: Sequence[int] | None = None) -> list[list[Image.Image]]:
    """``num_images`` images of class ``classes[i]`` for each i, drawn by the base from its own class embeddings.

    Diffusers' Stable Diffusion pipeline with the class embedding as ``prompt_embeds`` and the null sequence as
    ``negative_prompt_embeds`` (the base's own sampler); sample j of EEG i starts from the same noise as the
    method's (:func:`~dreamdiffusion.core.seeding.sample_seed`; ``indices[i]``: EEG i's index in the split, default
    i), so the two differ only by the conditioning.
    ``scheduler_config``: the method's sampler (default: DPM-Solver++ on the base's noise schedule).
    """
    from diffusers import StableDiffusionPipeline

    cond = class_conditioning(base)
    if cond is None:
        raise ValueError(f"base {base!r} has no class embeddings")
    embeds, null, _ = cond
    parts = hub.load_base(base)
    scheduler = make_scheduler("dpm", parts.scheduler_config) if scheduler_config is None else \
        _scheduler_class(scheduler_config).from_config(scheduler_config)
    sd = StableDiffusionPipeline(vae=parts.vae, text_encoder=None, tokenizer=None, unet=parts.unet,
                                 scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                 requires_safety_checker=False).to(device)
    sd.set_progress_bar_config(disable=True)
    size = parts.unet.config.sample_size
    size = size[0] if isinstance(size, (list, tuple)) else size
    shape = (parts.unet.config.in_channels, size, size)
    jobs = [(i, j) for i in range(len(classes)) for j in range(num_images)]
    images: list[Image.Image] = []
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b:b + batch_size]
        index = list(range(len(classes))) if indices is None else list(indices)
        latents = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(
            sample_seed(seed, index[i], j))) for i, j in chunk])
        idx = torch.as_tensor([int(classes[i]) for i, _ in chunk])
        images += sd(prompt_embeds=embeds[idx].to(device), negative_prompt_embeds=null[None].expand(len(chunk), -1, -1)
                     .to(device), num_inference_steps=steps, guidance_scale=guidance, latents=latents.to(device),
                     output_type="pil").images
    return [images[i * num_images:(i + 1) * num_images] for i in range(len(classes))]


def _scheduler_class(config: dict):
    import diffusers

    return getattr(diffusers, str(config.get("_class_name", "DPMSolverMultistepScheduler")))


def base_class_indices(labels: Sequence, class_names: Sequence[str]) -> list[int] | None:
    """Dataset labels -> indices into the base's classes, by name (``3`` -> ``"3"``); None if one is unknown."""
    index = {str(name): k for k, name in enumerate(class_names)}
    out = [index.get(str(lab)) for lab in labels]
    return None if any(k is None for k in out) else out


# ----------------------------------------------------------------------------------------------- all of them

@dataclass
class TestSide:
    """What ``evaluate`` knows of the scored split, as the baselines need it."""

    eegs: Sequence  # [C, T] windows, one per scored EEG
    labels: list | None  # dataset label per EEG
    targets: list[int]  # each EEG's index among the distinct images
    distinct_classes: list | None  # class of each distinct image (within-class 2-way)
    truth_embeds: torch.Tensor | None  # CLIP embeddings of the distinct images
    num_images: int
    steps: int
    guidance: float
    seed: int
    n_way_retrieval: int | None = None
    trials: int = 50
    scheduler_config: dict | None = None
    # the method's own CLIP-space outputs, for its margins over the ridge map (None: no margins): the CLIP head's
    # prediction per EEG [N, P] and the generated images' CLIP embeddings [N, S, P]
    method_eeg_embeds: torch.Tensor | None = None
    method_gen_embeds: torch.Tensor | None = None


def run_baselines(train: TrainPairs, test: TestSide, base: str | None,
                  embed_images: Callable[[Sequence[Image.Image]], torch.Tensor] | None,
                  score_images: Callable[[list[list[Image.Image]]], dict]) -> dict:
    """``{"baseline_ridge_class": {...} | None, "baseline_ridge_clip": {...} | None}`` plus ``*_skipped`` reasons,
    and ``baseline_ridge_clip_margins`` (:func:`ridge_clip_margins`) where ``test`` carries the method's embeddings.

    ``embed_images``: the CLIP image embedding (None: no CLIP, no ridge-CLIP baseline); ``score_images(images,
    rows)``: the method's own scoring of generated images (judge, pixels, CLIP), applied to the class-lookup images
    of the EEGs ``rows`` (the first trial of each distinct test image).
    """
    x_test = eeg_feature_matrix(test.eegs)
    search = RidgeSearch(train.features, train.image_ids)  # shared by both baselines
    out: dict = {}
    reason = _ridge_class_unavailable(train, test, base)
    if reason:
        out.update({"baseline_ridge_class": None, "baseline_ridge_class_skipped": reason})
    else:
        clf = search.fit(train.labels, classify=True)
        predicted = clf.predict(x_test)
        names = class_conditioning(base)[2]
        # A lookup's image depends on the EEG only through the predicted class: one trial of each distinct test
        # image (the first) says what it scores, at a quarter of the cost on a 4-trial benchmark.
        rows = sorted({t: i for i, t in reversed(list(enumerate(test.targets)))}.values())
        images = class_lookup_images(base, base_class_indices([predicted[i] for i in rows], names), test.num_images,
                                     test.steps, test.guidance, test.seed, scheduler_config=test.scheduler_config,
                                     indices=rows)
        scored = score_images(images, rows)
        scored["eeg_accuracy"] = float(np.mean([p == str(lab) for p, lab in zip(predicted, test.labels)]))
        lda = fit_lda(train.features, train.labels).predict(x_test)
        scored["lda_eeg_accuracy"] = float(np.mean([p == str(lab) for p, lab in zip(lda, test.labels)]))
        scored["ridge_alpha"] = clf.alpha
        out["baseline_ridge_class"] = scored
    if embed_images is None or test.truth_embeds is None or not train.images:
        out.update({"baseline_ridge_clip": None,
                    "baseline_ridge_clip_skipped": "no CLIP model (pass --clip) or no train images"})
        return out
    keys = list(train.images)
    embeds = embed_images([train.images[k] for k in keys]).float()
    row = {k: r for r, k in enumerate(keys)}
    y = embeds[[row[k] for k in train.image_ids]].numpy()
    reg = search.fit(y)
    pred = torch.from_numpy(reg.predict(x_test)).float()
    scores = ridge_clip_scores(pred, test.truth_embeds, test.targets, test.distinct_classes,
                               n_way=test.n_way_retrieval, trials=test.trials, seed=test.seed)
    out["baseline_ridge_clip"] = {**scores, "ridge_alpha": reg.alpha}
    margins = ridge_clip_margins(pred, test)
    if margins:
        out["baseline_ridge_clip_margins"] = margins
    return out


# (the method's metric key, the ridge's key, which of the method's outputs is scored)
MARGIN_KEYS = (("retrieval_top1", "retrieval_top1", "eeg"), ("retrieval_top5", "retrieval_top5", "eeg"),
               ("clip_within_class_2way", "clip_within_class_2way", "images"),
               ("embed_within_class_2way", "clip_within_class_2way", "eeg"))


def ridge_clip_margins(ridge_pred: torch.Tensor, test: TestSide, n_boot: int = 2000) -> dict:
    """The method minus ``baseline_ridge_clip`` on the same test EEGs, each with a 95 % interval from a paired
    bootstrap that resamples the distinct test images (:func:`~dreamdiffusion.evaluation.metrics.paired_bootstrap`):
    ``{metric: {"difference", "low", "high", "n_groups", "n_boot"}}`` for retrieval top-1 / top-5 and CLIP
    within-class 2-way (the generated images and the predicted embedding itself). Each side's per-EEG scores are
    those whose means ``evaluate`` reports (the same retrieval trials: the same generator seed). Empty without the
    method's embeddings."""
    truth, targets = test.truth_embeds, test.targets
    if truth is None or len(targets) < 2:
        return {}

    def rows(pred: torch.Tensor) -> dict:
        _, hits = M.retrieval_hits(pred, truth, top_k=(1, 5), n_way=test.n_way_retrieval, num_trials=test.trials,
                                   generator=torch.Generator().manual_seed(int(test.seed) + 1), targets=targets)
        out = {"retrieval_top1": hits[1], "retrieval_top5": hits[5]}
        if test.distinct_classes is not None:
            out["clip_within_class_2way"] = M.clip_within_class_rows(pred, truth, test.distinct_classes, targets)
        return out

    ridge = rows(ridge_pred.float())
    method = {"eeg": None if test.method_eeg_embeds is None else rows(test.method_eeg_embeds.float()), "images": None}
    if test.method_gen_embeds is not None and test.distinct_classes is not None:
        method["images"] = {"clip_within_class_2way": M.clip_within_class_rows(
            test.method_gen_embeds.float(), truth, test.distinct_classes, targets)}
    margins = {}
    for key, ridge_key, side in MARGIN_KEYS:
        if method[side] is None or ridge_key not in ridge or method[side].get(ridge_key) is None:
            continue
        ours, theirs = method[side][ridge_key], ridge[ridge_key]
        if not (np.isfinite(ours) & np.isfinite(theirs)).any():  # within class: no class with two test images
            continue
        margins[key] = M.paired_bootstrap(ours, theirs, targets, n_boot=n_boot, seed=test.seed)
    return margins


def _ridge_class_unavailable(train: TrainPairs, test: TestSide, base: str | None) -> str | None:
    if base is None:
        return "no base model known (pass --base, or a model whose finetune_config.json names one)"
    cond = class_conditioning(base)
    if cond is None:
        return f"the base {os.fspath(base)!r} is not class-conditional (no class embeddings)"
    if train.labels is None or test.labels is None:
        return "the dataset has no class labels"
    if base_class_indices(sorted({str(v) for v in train.labels}), cond[2]) is None:
        return "the dataset's labels are not the base's classes"
    return None


__all__ = ["TrainPairs", "TestSide", "eeg_feature_matrix", "load_train_pairs", "ridge_clip_scores",
           "class_conditioning", "class_lookup_images", "base_class_indices", "run_baselines", "N_BINS",
           "ridge_clip_margins", "MARGIN_KEYS"]
