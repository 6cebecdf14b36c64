"""Stage B's optional refit of the CLIP head after the warm-up: ``finetune --clip-head filters|eeg``.

The paper's CLIP head pools the encoder's tokens and regresses the image's CLIP embedding with ``1 - cos``. That
loss is dominated by what the images of one class share, so the head learns the class and little of what tells two
images of a class apart, although the warm-up's encoder carries it: on the built-in benchmark's val split (benchmark
seeds 1 / 131 / 11, the demo's Stage A and warm-up, every val EEG) the pooled head identifies an image against the
other images of its digit (CLIP within-class 2-way) 0.544 / 0.512 / 0.506, a ridge map from the raw EEG 0.554 /
0.528 / 0.533, and the head below, fitted on the same frozen tokens, 0.574 / 0.553 / 0.541.

``filters`` fits a new head on the warm-up encoder's tokens, the encoder frozen: the modern recipe's linear aligner
(``models.conditioner.filters_head``: a few learned mixtures of the token features, the tokens averaged into time
bins, UBP's projector) started from the closed-form ridge map of those features and trained with InfoNCE plus
``1 - cos`` (``training/align.py``'s ridge start and loop, at the modern recipe's settings). Its unit prediction is
scaled to the pooled head's mean length, so the context's linear read of the prediction (``clip_context``), fitted
in the warm-up, keeps its scale. The joint phase then runs as before.

``eeg`` fits the same head on the EEG window itself (the channels in place of the token features, the samples
averaged into the time bins), beside the encoder: the head the modern recipe aligns, read where the paper recipe's
prediction is read (the context's CLIP read, the steering, retrieval), while the encoder's tokens still make the
context. Why: on val the tokens' head fell below the ridge map at the seeds where the ridge map is strong (see
``docs/finetune.md``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import atomic_write_json
from dreamdiffusion.evaluation.figures import fmt
from dreamdiffusion.models.conditioner import filters_head
from dreamdiffusion.models.encoders import EmbeddingPrior
from dreamdiffusion.training.align import AlignConfig, ridge_start, train_loop
from dreamdiffusion.training.clip_warmup import _val_cosine, _val_set
from dreamdiffusion.training.finetune_config import FinetuneConfig
from dreamdiffusion.training.loop import JsonlLog
from dreamdiffusion.training.prior import predict, train_prior
from dreamdiffusion.training.stageb import FrozenTargets, stack_eeg

logger = logging.getLogger(__name__)

REFIT_FILE = "clip_head_refit.json"  # the record of the refit, in the finetune output folder
# The modern recipe's aligner settings (experiments/settings.py, chosen there on val): InfoNCE + (1 - cos) at
# weight 1, weight decay 1, batch 256, lr 1e-3 with 5 % warm-up and a cosine decay, the last step kept.
REFIT_BATCH, REFIT_LR, REFIT_WEIGHT_DECAY, REFIT_COSINE_WEIGHT = 256, 1e-3, 1.0, 1.0
REFIT_DROPOUT = 0.3  # the projector's dropout while it trains (the conditioner's copy has none)


@torch.no_grad()
def _collect(cond, dataset, device, prepare, kind: str = "filters",
             chunk: int = 128) -> tuple[torch.Tensor, np.ndarray, list, float]:
    """Every item's input as the new head reads it (``kind``: the encoder's tokens, or the EEG window for ``eeg``),
    already pooled into its time bins (``prepare``; the whole token sequences of a large set at the paper's width
    would not fit in memory), each item's index among the distinct images, the first item of each distinct image,
    and the mean length of the current head's predictions (the scale the new head's unit prediction takes). The
    encoder runs in eval mode."""
    was_training = cond.training
    cond.eval()
    xs, ids, index, firsts, total = [], [], {}, [], 0.0
    for start in range(0, len(dataset), chunk):
        items = [dataset[i] for i in range(start, min(start + chunk, len(dataset)))]
        eeg = stack_eeg(items).to(device, cond.dtype)
        tokens = cond.encoder(eeg)
        total += float(cond.clip_embeds(tokens, eeg).float().norm(dim=-1).sum())
        xs.append(prepare((eeg if kind == "eeg" else tokens.transpose(1, 2)).float().cpu()))
        for it in items:
            key = it.get("image_name")
            if key not in index:
                index[key] = len(firsts)
                firsts.append(it)
            ids.append(index[key])
    cond.train(was_training)
    return torch.cat(xs), np.asarray(ids, dtype=np.int64), firsts, total / max(1, len(ids))


def _image_classes(firsts: list) -> np.ndarray:
    """The class of each distinct train image (its first item's label), as integers, for the within-class loss."""
    labels = [it.get("label") for it in firsts]
    if any(lab is None for lab in labels):
        raise ConfigError("--clip-head-within-class-weight needs labelled train pairs (the dataset has no labels)")
    return np.unique([str(lab) for lab in labels], return_inverse=True)[1].astype(np.int64)


def refit_clip_head(cfg: FinetuneConfig, cond, train_ds, val_ds, targets: FrozenTargets, device,
                    out: Path | None) -> dict:
    """Fit the ``cfg.clip_head`` head (``filters``: on the frozen tokens of ``cond.encoder``; ``eeg``: on the EEG
    window) and put it in ``cond`` in place of its CLIP head. Writes ``out/clip_head_refit.json`` (``out`` None: nothing written) and returns its record."""
    t0 = time.perf_counter()
    width, length = cond.head_input_shape(cfg.clip_head)
    # trained on the CPU: the ridge start is numpy's, and the head is small beside the encoder
    head = filters_head(width, length, int(cond.config.clip_dim), cfg.clip_head_filters, cfg.clip_head_bins,
                        dropout=REFIT_DROPOUT)
    prepared, ids, firsts, scale = _collect(cond, train_ds, device, head.prepare, cfg.clip_head)
    unit = F.normalize(targets.clip_embeds(firsts).float().cpu(), dim=-1)[None]  # [1, M, P]: one target level
    acfg = AlignConfig(output=str(out or ""), batch_size=REFIT_BATCH, learning_rate=REFIT_LR,
                       weight_decay=REFIT_WEIGHT_DECAY, cosine_weight=REFIT_COSINE_WEIGHT,
                       max_steps=cfg.clip_head_steps, warmup_steps=max(1, cfg.clip_head_steps // 20),
                       within_class_weight=cfg.clip_head_within_class_weight, select="last", seed=cfg.seed)
    start = ridge_start(head, (prepared, ids), unit)
    log = JsonlLog(Path(out) / "clip_head_refit.jsonl", enabled=out is not None)
    classes = _image_classes(firsts) if cfg.clip_head_within_class_weight else None
    train_loop(head, acfg, (prepared, ids, classes), unit, None, log)
    head.eval()
    record = {"head": cfg.clip_head, "filters": cfg.clip_head_filters, "bins": cfg.clip_head_bins, "steps": cfg.clip_head_steps,
              "within_class_weight": cfg.clip_head_within_class_weight,
              "ridge_alpha": start["alpha"], "scale": scale, "train_trials": int(len(prepared))}
    val = _val_set(cfg, targets, val_ds, device)  # the warm-up's val pairs and cosine
    if val is not None:
        record["val_clip_cos_before"] = _val_cosine(cond, val, cfg.batch_size)
    cond.use_filters_head(head, scale, cfg.clip_head)
    if val is not None:
        record["val_clip_cos_after"] = _val_cosine(cond, val, cfg.batch_size)
    if cfg.clip_head_prior:
        truths = targets.clip_embeds(firsts)[torch.as_tensor(ids)]  # each train trial's image embedding
        record["prior"] = _fit_prior(cfg, cond, head, scale, prepared, truths, val, record.get("val_clip_cos_after"))
    record["seconds"] = round(time.perf_counter() - t0, 2)
    logger.info("CLIP head refit (%s, %d filters x %d bins, %d steps from the ridge map): val CLIP cosine %s -> %s (%.0f s)",
                cfg.clip_head, cfg.clip_head_filters, cfg.clip_head_bins, cfg.clip_head_steps,
                fmt(record.get("val_clip_cos_before")), fmt(record.get("val_clip_cos_after")), record["seconds"])
    if out is not None:
        atomic_write_json(Path(out) / REFIT_FILE, record)
    return record


def _fit_prior(cfg: FinetuneConfig, cond, head, scale: float, prepared: torch.Tensor, truths: torch.Tensor,
               val, before: float | None) -> dict:
    """Fit the head's prior (``training/prior.py``'s MLP, ``cfg.clip_head_prior`` wide) from the fitted head's train
    predictions (``prepared`` inputs, as ``cond`` scales them) to their images' CLIP embeddings ``truths [N, P]``;
    put it in ``cond`` where it raises the val pairs' CLIP cosine above ``before`` (the head's without it; or where
    there is no val set). Returns its record."""
    pred = predict(head, prepared, batch_size=1024, scale=scale)
    prior = train_prior(pred, truths.float().cpu(), cfg.clip_head_prior, cfg.clip_head_prior_steps, seed=cfg.seed)
    record = {"hidden": cfg.clip_head_prior, "steps": cfg.clip_head_prior_steps}
    cond.use_filters_head(head, scale, cfg.clip_head, prior)
    if val is not None:
        record["val_clip_cos_without"], record["val_clip_cos_with"] = before, _val_cosine(cond, val, cfg.batch_size)
    record["used"] = val is None or record["val_clip_cos_with"] > before
    if not record["used"]:
        cond.use_filters_head(head, scale, cfg.clip_head)
    logger.info("CLIP head prior %s: val CLIP cosine %s -> %s", "kept" if record["used"] else "dropped",
                fmt(record.get("val_clip_cos_without")), fmt(record.get("val_clip_cos_with")))
    return record


def refit_state(out: Path, clip_dim: int) -> tuple[float, EmbeddingPrior | None]:
    """The scale a refit recorded in ``out`` and a blank prior where it kept one (``--resume``: the checkpoint holds
    the head's and the prior's weights, not their shapes)."""
    path = Path(out) / REFIT_FILE
    try:
        record = json.loads(path.read_text())
        prior = record.get("prior") or {}
        return float(record["scale"]), (EmbeddingPrior(clip_dim, int(prior["hidden"])) if prior.get("used") else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError("--resume with --clip-head filters needs the refit's record of the run being resumed",
                          path) from None


__all__ = ["refit_clip_head", "refit_state", "REFIT_FILE"]
