"""Stage B's optional closed-form starts of the EEG tokenizer (``finetune --tokenizer-init ridge``) and of the
encoder's last norm (``finetune --encoder-norm affine``, :func:`calibrate_affine_norm` at the end).

The paper's transformer cuts the EEG into tokens with one linear map per patch (all channels x ``patch_size``
samples -> ``embed_dim``). At the ``tiny`` width that squeezes 128 channels x 4 samples into 64 numbers, and masked
signal modeling spends them on what dominates the signal's variance: the background, not the evoked response
(docs/pretrain.md: a linear probe of Stage A's tokens 0.50-0.68 where the raw EEG gives 0.92-0.97). Stage B's CLIP
warm-up then has to find the evoked part again through a tokenizer that already dropped it.

``ridge`` starts the tokenizer from the pairs Stage B trains on: the ridge map from the binned train EEG to the
CLIP image embedding of the image seen (the ``baseline_ridge_clip`` map, penalty chosen with all trials of an image
held out together), its leading spatial filters (left singular vectors over channels), each passed through the
patch's samples unchanged. The tokens then carry the channels' combinations that predict the image, in the same
time resolution, and everything after the tokenizer (Stage A's transformer blocks, the heads) trains as before.
``pretrained`` (the default) keeps the tokenizer as Stage A (or a fresh initialisation) left it: the paper.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.ridge import RidgeSearch
from dreamdiffusion.data.transforms import binned_means
from dreamdiffusion.models.eeg_encoder import TokenAffine
from dreamdiffusion.training.finetune_config import TOKENIZER_INITS
from dreamdiffusion.training.stageb import stack_eeg

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer_init.json"  # the record of a ridge start, in the finetune output folder
NORM_FILE = "encoder_norm.json"  # the record of an affine norm's calibration (finetune --encoder-norm affine)
# Time bins of the ridge map's features: the linear probe's 16. On val the ridge baselines' 8 did as well (benchmark
# seeds 1 / 11: top-1 0.673 / 0.500 with 8 bins, 0.649 / 0.508 with 16; warm-up val cosine 0.527 / 0.382 and
# 0.546 / 0.393; the paper's tokenizer 0.529 / 0.402, cosine 0.463 / 0.358).
RIDGE_BINS = 16


@torch.no_grad()
def ridge_tokenizer(encoder, train_ds, clip_embeds, n_bins: int = RIDGE_BINS, batch_size: int = 256) -> dict:
    """Set ``encoder.patch_embed`` (a ``Conv1d(C, D, kernel=stride=p)``) to the ``D // p`` leading spatial filters of
    the ridge map binned EEG -> CLIP embedding on ``train_ds``, each copied to the ``p`` samples of a patch.

    ``clip_embeds(items)``: the CLIP image embeddings ``[B, P]`` of items' images (Stage B's target cache; fitted as
    unit vectors, the direction the cosine loss scores). The weights are rescaled so the tokens keep the spread they
    had (the sine-cosine positions and the blocks' norms were trained at that scale); the bias is zeroed. Returns
    ``{"alpha", "filters", "singular_values", "n_train", "seconds"}``.
    """
    conv = getattr(encoder, "patch_embed", None)
    if not isinstance(conv, torch.nn.Conv1d):
        raise ConfigError("--tokenizer-init ridge needs the paper's transformer encoder (a patch embedding); "
                          f"this encoder is {type(encoder).__name__}")
    t0 = time.perf_counter()
    feats, targets, groups, sample = [], [], [], None
    for start in range(0, len(train_ds), batch_size):
        items = [train_ds[i] for i in range(start, min(len(train_ds), start + batch_size))]
        eeg = stack_eeg(items)
        sample = eeg[:64] if sample is None else sample
        feats.append(binned_means(eeg.float().numpy(), n_bins))
        targets.append(torch.nn.functional.normalize(clip_embeds(items).float(), dim=-1).cpu().numpy())
        groups += [it.get("image_name", start + i) for i, it in enumerate(items)]
    reg = RidgeSearch(np.concatenate(feats).astype(np.float64), groups).fit(np.concatenate(targets).astype(np.float64))
    d_out, n_chans, patch = conv.weight.shape
    # features are channel-major (channel c's bins together): one row per channel, its bins x CLIP dims across
    spatial, singular, _ = np.linalg.svd(np.asarray(reg.coef).reshape(n_chans, -1), full_matrices=False)
    k = min(d_out // patch, spatial.shape[1])
    device, dtype = conv.weight.device, conv.weight.dtype
    sample = sample.to(device, dtype)
    spread = float(conv(sample).std())
    weight = torch.zeros_like(conv.weight)
    filters = torch.as_tensor(spatial[:, :k].T.copy(), device=device, dtype=dtype)  # [k, C]
    for j in range(patch):
        weight[j:k * patch:patch, :, j] = filters  # output f * patch + j reads sample j of the patch through filter f
    conv.weight.copy_(weight)
    conv.bias.zero_()
    conv.weight.mul_(spread / max(float(conv(sample).std()), 1e-12))
    record = {"alpha": float(reg.alpha), "filters": int(k), "singular_values": [round(float(s), 4) for s in singular[:k]],
              "n_train": len(groups), "seconds": round(time.perf_counter() - t0, 2)}
    logger.info("tokenizer: %d ridge spatial filters (penalty %g) from %d train pairs in %.1f s", k, reg.alpha,
                len(groups), record["seconds"])
    return record


@torch.no_grad()
def calibrate_affine_norm(encoder, train_ds, device, n_windows: int = 512) -> dict | None:
    """``finetune --encoder-norm affine``: set the encoder's ``TokenAffine`` final norm from the tokens of up to
    ``n_windows`` train EEGs spread evenly over the split (deterministic: no random stream is touched).
    Returns the record written to ``encoder_norm.json``: ``{"scale", "spread", "n_windows"}``; None where the
    encoder has no such norm (a fresh preset encoder, like ``layernorm``, keeps its own)."""
    if not isinstance(getattr(encoder, "norm", None), TokenAffine):
        return None
    idx = np.unique(np.linspace(0, len(train_ds) - 1, min(n_windows, len(train_ds))).round().astype(int))
    mode = encoder.training
    encoder.eval()
    try:
        eeg = stack_eeg([train_ds[int(i)] for i in idx]).to(device, next(encoder.parameters()).dtype)
        record = encoder.calibrate_norm(eeg)
    finally:
        encoder.train(mode)
    record["n_windows"] = len(idx)
    logger.info("encoder norm: affine, tokens' spread %.3g on %d train EEGs scaled to 1", record["spread"], len(idx))
    return record


__all__ = ["TOKENIZER_INITS", "TOKENIZER_FILE", "NORM_FILE", "calibrate_affine_norm", "ridge_tokenizer"]
