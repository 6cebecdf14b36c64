"""Model selection on the val split from the images a model makes (never the test split, never the judge).

Stage B's losses say little about what matters: whether the image drawn from an EEG shows what the subject saw.
:func:`generated_clip_scores` measures that on val pairs with the CLIP image encoder Stage B already uses: each
val EEG -> one generated image -> CLIP embedding, compared with the CLIP embeddings of all val ground truths.
``finetune --select-metric gen_clip`` keeps the step that scores best; :func:`choose_guidance` picks the
classifier-free guidance scale the same way. The evaluation's judge (an image classifier) is left for the test
split alone, so selection and evaluation do not share a model.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import numpy as np
import torch

from dreamdiffusion.evaluation.evaluate import distinct_images, item_image_ids
from dreamdiffusion.evaluation.metrics import nan_mean, pairwise_identification, within_class_identification
from dreamdiffusion.generation import draw_images
from dreamdiffusion.models.hub import clip_image_embeds

logger = logging.getLogger(__name__)


def distinct_image_items(dataset, n: int) -> list[dict]:
    """The first trial of each of the first ``n`` distinct images of ``dataset`` (by ``image_name``).

    Datasets with several trials per image list them together; the first ``n`` items would then show only
    ``n / trials`` images, and a copy of the own image among the "other" ground truths ties with it.
    """
    items, seen = [], set()
    for i in range(len(dataset)):
        item = dataset[i]
        key = item.get("image_name", i)
        if key in seen:
            continue
        seen.add(key)
        items.append(item)
        if len(items) == n:
            break
    return items


def clip_truths(items: Sequence[dict], clip_model, clip_processor) -> tuple[torch.Tensor, list[int]]:
    """CLIP embeddings of the distinct ground-truth images of ``items`` (by ``image_name``) and each item's index
    among them: what :func:`generated_clip_scores` compares with (compute once, score many times)."""
    distinct, targets = distinct_images(item_image_ids(items), len(items))
    if len(distinct) < 2:
        raise ValueError("generated_clip_scores needs at least 2 distinct images")
    return clip_image_embeds([items[i]["image"] for i in distinct], clip_model, clip_processor, normalize=True,
                             batch_size=64), targets


@torch.no_grad()
def generated_clip_scores(pipe, items: Sequence[dict], clip_model, clip_processor, steps: int, guidance: float,
                          seed: int, batch_size: int = 32, autocast=None,
                          truths: tuple[torch.Tensor, list[int]] | None = None,
                          low_level_strength: float | None = None) -> dict:
    """Generate one image per item's ``eeg`` and score it against every item's ``image`` in CLIP space.

    Returns ``val_gen_clip_2way`` (for each generated image, the share of the other distinct ground-truth images,
    by ``image_name``, that are less similar to it than its own; chance 0.5) and ``val_gen_clip_cos`` (mean
    cosine to the own ground truth); where every item has a ``label``, ``val_gen_clip_within_class_2way`` too (the
    same against the other images of the own class only, ties half: a class lookup scores 0.5).
    Sampling noise is fixed by ``seed`` (:func:`dreamdiffusion.generation.draw_images`), so two calls differ only
    by the model or ``guidance``.
    ``truths``: :func:`clip_truths` of ``items``, when the caller scores the same items more than once.
    ``low_level_strength``: the pipeline's (None: its default).
    """
    if len(items) < 2:
        raise ValueError("generated_clip_scores needs at least 2 items")
    with autocast() if autocast is not None else contextlib.nullcontext():
        drawn = draw_images(pipe, [it["eeg"] for it in items], 1, steps, guidance, seed, batch_size=batch_size,
                            low_level_strength=low_level_strength)
    images = [row[0] for row in drawn]
    truth_embeds, targets = truths if truths is not None else clip_truths(items, clip_model, clip_processor)
    sim = (clip_image_embeds(images, clip_model, clip_processor, normalize=True, batch_size=64)
           @ truth_embeds.T).cpu().numpy()
    out = {"val_gen_clip_2way": float(pairwise_identification(sim, targets=targets).mean()),
           "val_gen_clip_cos": float(sim[np.arange(len(items)), targets].mean())}
    if all(it.get("label") is not None for it in items):
        classes = [None] * sim.shape[1]
        for it, t in zip(items, targets):
            classes[t] = str(it["label"])
        out["val_gen_clip_within_class_2way"] = nan_mean(within_class_identification(sim, classes, targets=targets))
    return out


def choose_guidance(pipe, items: Sequence[dict], clip_model, clip_processor, choices: Sequence[float], steps: int,
                    seed: int, batch_size: int = 32, metric: str = "val_gen_clip_2way",
                    known: dict[float, dict] | None = None) -> tuple[float, list[dict]]:
    """The guidance scale among ``choices`` with the best ``metric`` (a key of :func:`generated_clip_scores`) on
    ``items`` (val pairs).

    ``known``: scores of :func:`generated_clip_scores` already drawn for some scales on the same ``items``, steps
    and seed with this pipeline as it is (the demo's strength choice draws at one of the choices): those are not
    drawn again. Returns ``(best, records)``; ties go to the smaller scale (closer to the paper's 1).
    """
    return _choose(pipe, items, clip_model, clip_processor, "guidance", sorted(set(map(float, choices))),
                   lambda g: {"guidance": g}, steps, seed, batch_size, metric, known)


def choose_low_level_strength(pipe, items: Sequence[dict], clip_model, clip_processor, choices: Sequence[float],
                              steps: int, guidance: float, seed: int, batch_size: int = 32) -> tuple[float, list[dict]]:
    """The ``low_level_strength`` among ``choices`` (1 = no latent guess) with the best ``val_gen_clip_2way``
    on ``items`` at ``guidance``. Returns ``(best, records)``; ties go to the larger strength (less of the guess)."""
    return _choose(pipe, items, clip_model, clip_processor, "low_level_strength",
                   sorted(set(map(float, choices)), reverse=True),
                   lambda v: {"guidance": guidance, "low_level_strength": v}, steps, seed, batch_size)


def _choose(pipe, items, clip_model, clip_processor, name: str, values: list[float], kwargs, steps: int, seed: int,
            batch_size: int, metric: str = "val_gen_clip_2way",
            known: dict[float, dict] | None = None) -> tuple[float, list[dict]]:
    """The first of ``values`` with the best ``metric`` (``kwargs(value)``: how to draw with it; ``known``: scores
    already drawn for some values, used as they are)."""
    if not values:
        raise ValueError(f"choosing {name} needs at least one value")
    known = {float(k): v for k, v in (known or {}).items()}
    records = []
    truths = None if all(v in known for v in values) else clip_truths(items, clip_model, clip_processor)
    for value in values:
        if value in known:
            scores = known[value]
        else:
            scores = generated_clip_scores(pipe, items, clip_model, clip_processor, steps, seed=seed,
                                           batch_size=batch_size, truths=truths, **kwargs(value))
        if scores.get(metric) is None:
            raise ValueError(f"cannot choose {name} by {metric}: the val items give no such score "
                             f"(it has {', '.join(sorted(scores))})")
        records.append({**scores, name: value})
        logger.info("%s %.2f on val: %s %.3f%s", name, value, metric, scores[metric],
                    " (drawn before)" if value in known else "")
    best = max(records, key=lambda r: (r[metric], -values.index(r[name])))
    return best[name], records


__all__ = ["distinct_image_items", "clip_truths", "generated_clip_scores", "choose_guidance",
           "choose_low_level_strength"]
