"""Stage B's optional CLIP-alignment warm-up: the encoder + CLIP head alone on the CLIP-alignment loss
(``--align cosine``: ``1 - cos(head, CLIP image)``; ``contrastive``: InfoNCE with a learnable temperature), and
with ``--caption-weight`` the token mapper on the paired image's caption context (training/captions.py).

Why: the diffusion loss gives the encoder a weak, noisy signal, and on a small set of noisy single
trials the encoder learns to tell the train trials apart instead of what they show. The CLIP loss
alone is cheap (no VAE, no UNet), so many more encoder steps fit the budget, and the val split
decides how many of them to keep.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dreamdiffusion.core.errors import DataError
from dreamdiffusion.core.files import atomic_write_json
from dreamdiffusion.evaluation.figures import fmt
from dreamdiffusion.training.captions import CaptionTargets
from dreamdiffusion.training.finetune_config import FinetuneConfig
from dreamdiffusion.training.loop import StepBatchSampler
from dreamdiffusion.training.stageb import FrozenTargets, StageBParts, alignment_loss, image_ids, stack_eeg

logger = logging.getLogger(__name__)

WARMUP_FILE = "clip_warmup.json"


# The held-still encoder's tokens of the train split are kept in memory up to this size (the demo's: ~180 MB);
# past it they are computed at every step, as with a trained encoder.
TOKEN_CACHE_BYTES = 1 << 30


def _val_cosine(cond, val: tuple[torch.Tensor, torch.Tensor], batch_size: int,
                tokens: torch.Tensor | None = None) -> float:
    """Mean cosine between the CLIP head's prediction for each val EEG and its image's CLIP embedding (``tokens``:
    the held-still encoder's tokens of those EEGs, computed once)."""
    eeg, targets = val
    cond.eval()
    with torch.no_grad():
        pred = torch.cat([(cond(eeg[i:i + batch_size]) if tokens is None else
                           cond.from_tokens(tokens[i:i + batch_size], eeg[i:i + batch_size])).clip_embeds
                          for i in range(0, len(eeg), batch_size)])
    cond.train()
    return float(F.cosine_similarity(pred.float(), targets, dim=-1).mean())


def _val_set(cfg: FinetuneConfig, targets: FrozenTargets, val_ds, device):
    """(val EEG, their CLIP targets) of the first ``val_limit`` val pairs, or None without a val split."""
    if val_ds is None or not len(val_ds):
        return None
    n = len(val_ds) if cfg.val_limit is None else min(cfg.val_limit, len(val_ds))
    items = [val_ds[i] for i in range(n)]
    return stack_eeg(items).to(device), targets.clip_embeds(items)


def _frozen_tokens(cond, eeg_of, n: int, batch_size: int, device) -> torch.Tensor | None:
    """The encoder's tokens ``[n, N, D]`` of EEGs ``eeg_of(range)`` (``[b, C, T]``), computed once for a warm-up that
    holds the encoder still (rate 0): each step then runs only the heads, a fraction of a step through the encoder
    and back. The encoder runs as at inference (eval mode: no dropout), which is what holding it still means. None
    when the tokens would pass ``TOKEN_CACHE_BYTES``."""
    enc = cond.encoder
    mode = enc.training
    enc.eval()
    parts = []
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                tokens = enc(eeg_of(range(start, min(n, start + batch_size))).to(device, cond.dtype))
                if tokens.element_size() * tokens[0].numel() * n > TOKEN_CACHE_BYTES:
                    return None
                parts.append(tokens)
    finally:
        enc.train(mode)
    return torch.cat(parts)


def _warmup_optimizer(cfg: FinetuneConfig, cond, logit_scale) -> tuple[torch.optim.Optimizer, list]:
    """AdamW over the warm-up's parameters, and the list whose gradient norm is clipped.

    The heads (and ``logit_scale``) at the warm-up's rate; the encoder in a group of its own at
    ``clip_warmup_encoder_learning_rate`` (the same update as one group when the rates are equal: AdamW is per
    parameter), or with no gradient through it at all at rate 0, as Stage B starts it (the caller restores its
    flags after the loop)."""
    heads = ("clip_pool", "clip_proj") + (("token_mapper", "dim_mapper", "clip_context_proj")
                                          if cfg.caption_weight else ())
    trained = ("encoder",) + heads
    warmup_lr = cfg.clip_warmup_learning_rate or cfg.learning_rate
    encoder_lr = warmup_lr if cfg.clip_warmup_encoder_learning_rate is None else cfg.clip_warmup_encoder_learning_rate
    groups = [{"params": [q for n, q in cond.named_parameters() if n.split(".")[0] in heads]}]
    if encoder_lr == 0:
        cond.encoder.requires_grad_(False)
    else:
        groups.append({"params": list(cond.encoder.parameters()), "lr": encoder_lr})
    groups[0]["params"] += [logit_scale] if logit_scale is not None else []
    # in the module's order, as before the groups: the clipped norm sums them in this order
    params = [q for n, q in cond.named_parameters() if n.split(".")[0] in trained and q.requires_grad]
    params += [logit_scale] if logit_scale is not None else []
    return torch.optim.AdamW(groups, lr=warmup_lr, weight_decay=cfg.weight_decay), params


def _warmup_schedule(cfg: FinetuneConfig, opt):
    """The warm-up's learning-rate schedule: None (constant) or cosine to 0 by its last step."""
    if cfg.clip_warmup_schedule != "cosine":
        return None
    from diffusers.optimization import get_scheduler

    return get_scheduler("cosine", opt, num_warmup_steps=0, num_training_steps=cfg.clip_warmup_steps)


def _token_caches(cfg: FinetuneConfig, cond, train_ds, val, device):
    """The encoder's tokens of the train split and the val EEG, computed once when the encoder is held still.

    ``(None, None)`` when the encoder trains in the warm-up (its tokens change every step) or when the
    tokens would not fit in memory (``_frozen_tokens``); the val cache is None without a val set.
    """
    if any(q.requires_grad for q in cond.encoder.parameters()):
        return None, None
    cached = _frozen_tokens(cond, lambda idx: stack_eeg([train_ds[i] for i in idx]), len(train_ds),
                            cfg.batch_size, device)
    if cached is None or val is None:
        return cached, None
    return cached, _frozen_tokens(cond, lambda idx: val[0][idx.start:idx.stop], len(val[0]), cfg.batch_size, device)


def clip_warmup(cfg: FinetuneConfig, parts: StageBParts, train_ds, val_ds, device, out: Path | None,
                targets: FrozenTargets | None = None) -> dict:
    """Train the encoder + CLIP head of ``parts.conditioner`` in place; keep the step with the best val cosine.

    Writes ``out/clip_warmup.json`` (``out`` None: nothing written, e.g. on non-main processes) and returns
    ``{"step": kept step, "val_clip_cos": its val cosine}``. ``targets``: the run's CLIP embedding cache (each
    image embedded once; a new one by default).
    """
    t0 = time.perf_counter()
    targets = targets or FrozenTargets(parts.clip, parts.clip_processor, parts.vae)
    cond = parts.conditioner
    cond.to(device)
    captions = CaptionTargets(cfg.base, cfg.dataset) if cfg.caption_weight else None
    # --align contrastive: the warm-up's own learnable temperature, handed on to the joint phase.
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07))) if cfg.align == "contrastive" else None
    encoder_grad = [q.requires_grad for q in cond.encoder.parameters()]
    opt, params = _warmup_optimizer(cfg, cond, logit_scale)
    steps = cfg.clip_warmup_steps
    schedule = _warmup_schedule(cfg, opt)
    if len(train_ds) < cfg.batch_size:
        raise DataError(f"the train split has {len(train_ds)} pairs, fewer than one batch of "
                        f"{cfg.batch_size} (lower --batch-size)", cfg.dataset)
    every = max(1, steps // 20)
    val = _val_set(cfg, targets, val_ds, device)
    cached, cached_val = _token_caches(cfg, cond, train_ds, val, device)
    # Its own data order (seed + 1): the diffusion phase's order stays what it is without a warm-up.
    sampler = StepBatchSampler(len(train_ds), cfg.batch_size, cfg.seed + 1, steps)
    best = {"step": 0, "val_clip_cos": _val_cosine(cond, val, cfg.batch_size, cached_val) if val is not None else None}
    best_state = {n: q.detach().clone() for n, q in cond.named_parameters()}
    records = []
    cond.train()
    for step, idx in enumerate(sampler, start=1):
        items = [train_ds[i] for i in idx]
        target = targets.clip_embeds(items)
        eeg = stack_eeg(items).to(device)
        out_b = cond(eeg) if cached is None else cond.from_tokens(cached[torch.as_tensor(idx)], eeg)
        clip_loss = alignment_loss(cfg.align, out_b.clip_embeds, target, logit_scale, image_ids(items).to(device),
                                   cfg.align_cosine_weight)
        caption_loss = captions.loss(out_b.cond, items) if captions is not None else None
        loss = clip_loss if caption_loss is None else clip_loss + cfg.caption_weight * caption_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm and cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        lr = opt.param_groups[0]["lr"]  # the rate this step used
        if schedule is not None:
            schedule.step()
        if val is not None and (step % every == 0 or step == steps):
            record = {"step": step, "lr": lr, "clip_loss": float(clip_loss.detach()),
                      **({"caption_loss": float(caption_loss.detach())} if caption_loss is not None else {}),
                      "val_clip_cos": _val_cosine(cond, val, cfg.batch_size, cached_val)}
            records.append(record)
            if record["val_clip_cos"] > best["val_clip_cos"]:
                best = {"step": step, "val_clip_cos": record["val_clip_cos"]}
                best_state = {n: q.detach().clone() for n, q in cond.named_parameters()}
    if val is None:  # nothing to choose with: keep the last step
        best = {"step": steps, "val_clip_cos": None}
    else:
        with torch.no_grad():
            for n, q in cond.named_parameters():
                q.copy_(best_state[n])
    opt.zero_grad(set_to_none=True)
    for q, flag in zip(cond.encoder.parameters(), encoder_grad):
        q.requires_grad_(flag)
    logger.info("CLIP warm-up: %d steps, kept step %d (val CLIP cosine %s)", steps, best["step"],
                fmt(best["val_clip_cos"]))
    if logit_scale is not None:
        best["logit_scale"] = float(logit_scale.detach())
    if out is not None:
        atomic_write_json(Path(out) / WARMUP_FILE, {"steps": steps, "best": best, "records": records,
                                                    "tokens_computed_once": cached is not None,
                                                    "seconds": round(time.perf_counter() - t0, 2)})
    return best


__all__ = ["clip_warmup", "WARMUP_FILE"]
