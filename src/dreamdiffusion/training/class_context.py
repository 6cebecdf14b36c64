"""``finetune --class-context``: the class reader's discriminant fitted in closed form, before the CLIP warm-up.

A shrinkage LDA (:func:`~dreamdiffusion.core.discriminant.fit_lda`) on the train split's time-binned EEG means, the
same features and fit as the ``ridge -> class`` baseline's LDA, becomes the conditioner's
:class:`~dreamdiffusion.models.class_reader.ClassReader`, with the base's own context of each class (the caption
contexts of ``--caption-weight``) as the rows it weighs. Fitted before the warm-up, so the caption loss and the joint
phase train the rest of the context around it; held from then on (no gradient), as the ridge start of the tokenizer
is a start and this is not: a few hundred diffusion steps would only add noise to a closed-form discriminant.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from dreamdiffusion.core.discriminant import N_BINS, fit_lda
from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.data.transforms import binned_means
from dreamdiffusion.training.captions import CaptionTargets
from dreamdiffusion.training.stageb import stack_eeg

CLASS_CONTEXT_FILE = "class_context.json"


def _binned_split(dataset, n_bins: int, batch_size: int, source) -> tuple[np.ndarray, list[str]]:
    """``(features [N, C * bins], labels)`` of every item, read a batch at a time."""
    feats, labels = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        if any(it.get("label") is None for it in items):
            raise DataError("--class-context needs labelled pairs (an item has no label)", source)
        feats.append(binned_means(stack_eeg(items).float().numpy(), n_bins))
        labels += [str(it["label"]) for it in items]
    return np.concatenate(feats), labels


def _linear_form(lda) -> tuple[np.ndarray, np.ndarray]:
    """LDA's decision function as ``(weight [K, F], bias [K])`` whose softmax is its ``predict_proba``."""
    coef, intercept = np.asarray(lda.coef_, np.float64), np.asarray(lda.intercept_, np.float64)
    if len(lda.classes_) == 2:  # scikit-learn keeps one row for two classes: softmax([0, d]) = sigmoid(d)
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    return coef, intercept


@torch.no_grad()
def fit_class_context(conditioner, train_ds, base: str, val_ds=None, n_bins: int = N_BINS, batch_size: int = 256,
                      source=None) -> dict:
    """Fit the discriminant on ``train_ds``, give ``conditioner`` its class reader, and return a record: the classes,
    the fit's train accuracy (on the features already read: one pass over the train split), the val accuracy of the
    reader as the conditioner holds it, the seconds it took."""
    t0 = time.perf_counter()
    x, labels = _binned_split(train_ds, n_bins, batch_size, source)
    if len(set(labels)) < 2:
        raise DataError(f"--class-context needs two or more classes in the train split, found {sorted(set(labels))}",
                        source)
    lda = fit_lda(x, labels)
    names = [str(c) for c in lda.classes_]
    contexts = CaptionTargets(base, source)([{"label": n} for n in names])  # [K, L, D], row k: class names[k]
    if tuple(contexts.shape[1:]) != tuple(conditioner.null_cond.shape):
        raise ConfigError(f"--class-context: the base's class contexts are {tuple(contexts.shape[1:])}, the "
                          f"conditioner's context {tuple(conditioner.null_cond.shape)}", base)
    weight, bias = _linear_form(lda)
    reader = conditioner.use_class_reader(weight, bias, contexts, n_bins)
    record = {"classes": names, "bins": n_bins, "n_train": len(labels),
              "train_accuracy": float(np.mean(lda.predict(x) == np.asarray(labels)))}
    if val_ds is not None and len(val_ds):
        record["val_accuracy"] = _accuracy(reader, val_ds, names, batch_size)
    record["seconds"] = round(time.perf_counter() - t0, 2)
    return record


def _accuracy(reader, dataset, names: list[str], batch_size: int) -> float | None:
    """Share of ``dataset``'s items whose most probable class under ``reader`` is their label (None: unlabelled)."""
    hits = total = 0
    device = reader.discriminant.weight.device
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        if any(it.get("label") is None for it in items):
            return None
        pred = reader.posterior(stack_eeg(items).to(device)).argmax(-1).tolist()
        hits += sum(names[p] == str(it["label"]) for p, it in zip(pred, items))
        total += len(items)
    return hits / total if total else None


__all__ = ["CLASS_CONTEXT_FILE", "fit_class_context"]
