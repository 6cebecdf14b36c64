"""Linear probe of an EEG encoder: how much of what the EEG carries about the label its tokens keep.

A ridge classifier is fit on the train split's features and scored on val, for three feature sets
side by side:

- the encoder's tokens ``[B, N, D]``, averaged within ``n_bins`` equal time bins and flattened
  (``n_bins`` x ``D`` features; a single global mean would throw away *when* things happen, which is
  what an evoked response is);
- the same for a randomly initialised encoder of the same shape (what the architecture keeps with no
  training at all);
- the raw EEG averaged in the same ``n_bins`` time bins per channel (the usual linear ERP decoder):
  the level a good encoder should keep.

The ridge penalty is chosen on the train features alone, holding out all trials of an image together
(:class:`~dreamdiffusion.core.ridge.RidgeSearch`); val only scores. The split is read a batch at a
time and every feature set is computed in the same pass, so the raw EEG of a split is never all in memory.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import torch

from dreamdiffusion.core.ridge import RidgeSearch
from dreamdiffusion.core.seeding import seed_everything
from dreamdiffusion.data.transforms import binned_means

logger = logging.getLogger(__name__)

PROBE_BINS = 16  # time bins of the features: the default everywhere a probe is run (pretrain, the demo)


def ridge_accuracy(x_train: np.ndarray, y_train, x_val: np.ndarray, y_val, groups=None) -> float:
    """Val accuracy of a ridge classifier fit on the train features as they are (``groups``: each train row's image;
    None: every row its own).

    Not standardised: per-feature z-scoring lifts the near-silent, noise-only EEG channels to the
    level of the informative ones (raw-EEG probe 0.957 -> 0.918 on benchmark seed 0's val).
    """
    clf = RidgeSearch(x_train, groups).fit(list(y_train), classify=True)
    return float(np.mean(clf.predict(x_val) == np.asarray([str(v) for v in y_val], dtype=object)))


@torch.inference_mode()
def probe_features(dataset, encoders: dict, n_bins: int = PROBE_BINS, raw: bool = True,
                   batch_size: int = 64) -> tuple[dict[str, np.ndarray], list, list]:
    """``({name: features [N, F]}, labels, images)`` of a paired dataset in one pass.

    ``encoders``: name -> encoder; each gives its tokens binned in time (``[N, D * n_bins]``), and with ``raw``
    ``"raw_eeg"`` is the EEG binned (``[N, C * n_bins]``). A dataset with ``eeg(i)`` and ``image_keys()`` (the
    benchmark's) is read without its images; any other item by item (``eeg``, ``label``, ``image_name``).
    """
    n = len(dataset)
    if not n:
        raise ValueError("the dataset is empty")
    fast = hasattr(dataset, "eeg") and hasattr(dataset, "image_keys")
    keys = list(dataset.image_keys()) if fast else []
    modes = {name: enc.training for name, enc in encoders.items()}
    out = {name: [] for name in ((["raw_eeg"] if raw else []) + list(encoders))}
    try:
        for enc in encoders.values():
            enc.eval()
        for start in range(0, n, batch_size):
            idx = range(start, min(n, start + batch_size))
            if fast:
                eeg = torch.stack([torch.as_tensor(dataset.eeg(i)) for i in idx]).float()
            else:
                items = [dataset[i] for i in idx]
                eeg = torch.stack([torch.as_tensor(it["eeg"]) for it in items]).float()
                keys += [(it.get("image_name", i), it.get("label")) for i, it in zip(idx, items)]
            if raw:
                out["raw_eeg"].append(binned_means(eeg.numpy(), n_bins))
            for name, enc in encoders.items():
                tokens = enc(eeg.to(next(enc.parameters()).device)).float().cpu()  # [b, N, D]
                out[name].append(binned_means(tokens.transpose(1, 2).numpy(), n_bins))
    finally:
        for name, enc in encoders.items():
            enc.train(modes[name])
    labels = [label for _, label in keys]
    if any(label is None for label in labels):
        raise ValueError("the dataset has no labels to probe")
    return {name: np.concatenate(parts) for name, parts in out.items()}, labels, [image for image, _ in keys]


def random_encoder_like(encoder, seed: int):
    """A freshly initialised encoder of the same class and config (seeded)."""
    seed_everything(seed)
    # Private keys dropped: diffusers' from_config resets to its defaults whatever _use_default_values lists.
    return type(encoder).from_config({k: v for k, v in encoder.config.items() if not k.startswith("_")})


def linear_probe(encoder, train, val, n_bins: int = PROBE_BINS, seed: int = 0, baselines: bool = True,
                 reference=None, raw: bool | None = None) -> dict:
    """Probe accuracies on val: ``probe_encoder`` and, with ``baselines``, ``probe_random_encoder`` and
    ``probe_raw_eeg``; plus the counts and ``probe_chance`` (the most frequent train label's share of val).
    ``raw``: whether to probe the raw EEG (None: as ``baselines``), for a caller that already has that number.

    ``reference``: the untrained encoder to probe as ``probe_random_encoder`` (``pretrain`` passes the start it
    trained from); None: a fresh draw of the same config (:func:`random_encoder_like`, ``seed``).

    ``train``, ``val``: paired datasets (items with ``eeg`` and ``label``, as ``data.pairs`` gives them)."""
    encoders = {"encoder": encoder}
    device = next(encoder.parameters()).device
    if baselines and reference is not None:
        encoders["random_encoder"] = reference if next(reference.parameters()).device == device else reference.to(device)
    elif baselines:
        state = torch.random.get_rng_state()
        rand = random_encoder_like(encoder, seed)
        if device.type != "cpu":  # (ModelMixin.to costs seconds of imports even when nothing moves)
            rand = rand.to(device)
        torch.random.set_rng_state(state)  # probing must not move the caller's random stream
        encoders["random_encoder"] = rand
    raw = baselines if raw is None else raw
    x_tr, y_tr, images = probe_features(train, encoders, n_bins, raw=raw)
    x_va, y_va, _ = probe_features(val, encoders, n_bins, raw=raw)
    result = {f"probe_{name}": ridge_accuracy(x_tr[name], y_tr, x_va[name], y_va, images) for name in x_tr}
    majority = Counter(map(str, y_tr)).most_common(1)[0][0]
    result.update({"probe_chance": float(np.mean([str(v) == majority for v in y_va])),
                   "probe_n_train": len(y_tr), "probe_n_val": len(y_va), "probe_n_bins": int(n_bins)})
    return result


__all__ = ["PROBE_BINS", "linear_probe", "probe_features", "ridge_accuracy", "random_encoder_like"]
