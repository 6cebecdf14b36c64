"""Model selection on the val split from the images a model makes (never the test split, never the judge).

Stage B's losses say little about what matters: whether the image drawn from an EEG shows what the subject saw.
:func:`generated_clip_scores` measures that on val pairs with the CLIP image encoder Stage B already uses: each
val EEG -> one generated image -> CLIP embedding, compared with the CLIP embeddings of all val ground truths.
``finetune --select-metric gen_clip`` keeps the step that scores best; :func:`choose_guidance` picks the
classifier-free guidance scale the same way. The evaluation's judge (an image classifier) is left for the test
split alone, so selection and evaluation do not share a model.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


@torch.no_grad()
def clip_image_embeddings(images: Sequence, clip_model, clip_processor, batch_size: int = 64) -> torch.Tensor:
    """Unit-length CLIP ``image_embeds`` ``[N, P]`` of PIL images (CLIP's own preprocessing)."""
    from dreamdiffusion.data.images import clip_pixel_values

    device, dtype = clip_model.device, clip_model.dtype
    out = []
    for i in range(0, len(images), batch_size):
        px = clip_pixel_values(list(images[i:i + batch_size]), clip_processor).to(device, dtype)
        out.append(F.normalize(clip_model(pixel_values=px).image_embeds.float(), dim=-1))
    return torch.cat(out)


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
    from dreamdiffusion.evaluation.evaluate import distinct_images, item_image_ids

    distinct, targets = distinct_images(item_image_ids(items), len(items))
    if len(distinct) < 2:
        raise ValueError("generated_clip_scores needs at least 2 distinct images")
    return clip_image_embeddings([items[i]["image"] for i in distinct], clip_model, clip_processor), targets


@torch.no_grad()
def generated_clip_scores(pipe, items: Sequence[dict], clip_model, clip_processor, steps: int, guidance: float,
                          seed: int, batch_size: int = 32, autocast=None,
                          truths: tuple[torch.Tensor, list[int]] | None = None) -> dict:
    """Generate one image per item's ``eeg`` and score it against every item's ``image`` in CLIP space.

    Returns ``val_gen_clip_2way`` (for each generated image, the share of the other distinct ground-truth images,
    by ``image_name``, that are less similar to it than its own; chance 0.5) and ``val_gen_clip_cos`` (mean
    cosine to the own ground truth).
    Sampling noise is fixed by ``seed`` (chunk by chunk), so two calls differ only by the model or ``guidance``.
    ``truths``: :func:`clip_truths` of ``items``, when the caller scores the same items more than once.
    """
    from dreamdiffusion.evaluation.metrics import pairwise_identification

    if len(items) < 2:
        raise ValueError("generated_clip_scores needs at least 2 items")
    images = []
    for i0 in range(0, len(items), batch_size):
        chunk = items[i0:i0 + batch_size]
        eeg = torch.stack([torch.as_tensor(it["eeg"], dtype=torch.float32) for it in chunk])
        gen = torch.Generator().manual_seed(seed * 1_000_003 + i0)
        ctx = autocast() if autocast is not None else _Null()
        with ctx:
            images += pipe(eeg, num_images_per_eeg=1, num_inference_steps=steps, guidance_scale=guidance,
                           generator=gen, output_type="pil").images
    truth_embeds, targets = truths if truths is not None else clip_truths(items, clip_model, clip_processor)
    sim = (clip_image_embeddings(images, clip_model, clip_processor) @ truth_embeds.T).cpu().numpy()
    return {"val_gen_clip_2way": float(pairwise_identification(sim, targets=targets).mean()),
            "val_gen_clip_cos": float(sim[np.arange(len(items)), targets].mean())}


def choose_guidance(pipe, items: Sequence[dict], clip_model, clip_processor, choices: Sequence[float], steps: int,
                    seed: int, batch_size: int = 32) -> tuple[float, list[dict]]:
    """The guidance scale among ``choices`` with the best ``val_gen_clip_2way`` on ``items`` (val pairs).

    Returns ``(best, records)``; ties go to the smaller scale (closer to the paper's 1).
    """
    if not choices:
        raise ValueError("choose_guidance needs at least one guidance scale")
    records, truths = [], clip_truths(items, clip_model, clip_processor)
    for g in sorted(set(float(c) for c in choices)):
        scores = generated_clip_scores(pipe, items, clip_model, clip_processor, steps, g, seed, batch_size,
                                       truths=truths)
        records.append({"guidance": g, **scores})
        logger.info("guidance %.2f on val: CLIP 2-way %.3f", g, scores["val_gen_clip_2way"])
    best = max(records, key=lambda r: (r["val_gen_clip_2way"], -r["guidance"]))
    return best["guidance"], records


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


__all__ = ["distinct_image_items", "clip_truths", "clip_image_embeddings", "generated_clip_scores", "choose_guidance"]
