"""Symmetric InfoNCE (CLIP's loss) between EEG embeddings and image embeddings, with repeated trials.

``logits = exp(logit_scale) * normalize(eeg) @ normalize(image).T``; each EEG must pick out its own image
among the batch's images (in-batch negatives) and each image its EEG, the two cross-entropies averaged.

Datasets show one image several times (the built-in benchmark: 4 trials per image; THINGS-EEG2: 4 per
training image). Two trials of one image in a batch are *positives of each other*: with plain InfoNCE the
other trial's image (an identical target) would be a negative, pushing the EEG away from its own image.
Here the positive set of EEG i is every batch element with the same image id, and the loss is the
multi-positive form ``-log(sum_pos exp(l_ij) / sum_all exp(l_ij))``; with one trial per image it is exactly
CLIP's loss. Its minimum is 0; with unrelated embeddings it is about ``log(batch)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def positive_mask(image_ids: torch.Tensor | None, n: int, device=None) -> torch.Tensor:
    """``[n, n]`` bool: True where two batch elements show the same image (the diagonal always)."""
    if image_ids is None:
        return torch.eye(n, dtype=torch.bool, device=device)
    ids = torch.as_tensor(image_ids, device=device)
    if ids.shape != (n,):
        raise ValueError(f"need one image id per batch element ({n}), got shape {tuple(ids.shape)}")
    return ids[:, None] == ids[None, :]


def _multi_positive_ce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Per row: ``logsumexp(all) - logsumexp(positives)``."""
    pos = logits.masked_fill(~positives, float("-inf"))
    return torch.logsumexp(logits, dim=1) - torch.logsumexp(pos, dim=1)


def info_nce(eeg: torch.Tensor, image: torch.Tensor, logit_scale: torch.Tensor | float,
             image_ids: torch.Tensor | None = None, cosine_weight: float = 0.0,
             class_ids: torch.Tensor | None = None, within_class_weight: float = 0.0) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE of ``eeg [B, D]`` against ``image [B, D]`` (row i belongs to row i).

    ``logit_scale`` is the inverse temperature (``exp`` of the learnable log-scale, already applied).
    ``image_ids`` ``[B]``: rows with equal ids are repeated trials of one image, never each other's negatives.
    ``cosine_weight``: + this x (1 - mean cos of each row to its own image). InfoNCE alone fixes only the ranking of
    the directions; the cosine term also pulls each one onto its image (ATM adds such a term).
    ``class_ids [B]`` with ``within_class_weight``: + this x the same loss with the negatives restricted to the
    batch's images *of the own class*. In-batch negatives are mostly of other classes, so InfoNCE alone is won
    largely by the class; this term asks for what tells two images of one class apart (the within-class 2-way).
    A row with no other image of its class in the batch adds 0.
    """
    if eeg.shape != image.shape or eeg.ndim != 2:
        raise ValueError(f"eeg and image embeddings must both be [batch, dim], got {tuple(eeg.shape)} and "
                         f"{tuple(image.shape)}")
    logits = logit_scale * F.normalize(eeg.float(), dim=-1) @ F.normalize(image.float(), dim=-1).T  # [B, B]
    positives = positive_mask(image_ids, logits.shape[0], logits.device)
    loss = 0.5 * (_multi_positive_ce(logits, positives).mean() + _multi_positive_ce(logits.T, positives.T).mean())
    if within_class_weight:
        if class_ids is None:
            raise ValueError("within_class_weight needs the class of each batch element (class_ids)")
        same = positive_mask(class_ids, logits.shape[0], logits.device)  # (positives are of the own class too)
        within = logits.masked_fill(~same, float("-inf"))
        loss = loss + within_class_weight * 0.5 * (_multi_positive_ce(within, positives).mean()
                                                   + _multi_positive_ce(within.T, positives.T).mean())
    if cosine_weight:
        loss = loss + cosine_weight * (1 - F.cosine_similarity(eeg.float(), image.float(), dim=-1).mean())
    return loss


__all__ = ["info_nce", "positive_mask"]
