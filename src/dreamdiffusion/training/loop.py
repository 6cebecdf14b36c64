"""Pieces every training loop here shares: seeding, data order, optimizer groups, schedule, guards, logs.

Determinism and resume rest on one idea: nothing random depends on how far a process has run.
The data order of epoch ``e`` is a permutation seeded by ``(seed, e)`` and the masking noise of
step ``s`` on rank ``r`` by ``(seed, s, r)``; a run resumed at step ``s`` therefore draws exactly
what an uninterrupted run draws from step ``s`` on, without saving or replaying any generator.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Iterator

import torch

from dreamdiffusion.core.files import atomic_write_text
from dreamdiffusion.core.seeding import (  # noqa: F401  (re-exported)
    STREAM_DATA,
    STREAM_MASK,
    STREAM_VAL,
    derived_seed,
    epoch_permutation,
    seed_everything,
    seeded_generator,
)

logger = logging.getLogger(__name__)

class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches for steps ``start_step .. total_steps - 1`` of one process, derived from the step number alone.

    Step ``s`` belongs to epoch ``s // steps_per_epoch``; its global batch is the slice
    ``[pos * B * world, (pos + 1) * B * world)`` of that epoch's permutation and rank ``r`` takes
    the ``r``-th block of ``B`` (so ranks never see the same window in a step, and a resumed run
    picks up at the exact position inside the epoch). The last incomplete global batch of an
    epoch is dropped so every step has the same shape.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, total_steps: int, start_step: int = 0,
                 num_replicas: int = 1, rank: int = 0):
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.total_steps, self.start_step = total_steps, start_step
        self.num_replicas, self.rank = num_replicas, rank
        self.steps_per_epoch = n_items // (batch_size * num_replicas)
        if self.steps_per_epoch < 1:
            raise ValueError(f"{n_items} items are fewer than one global batch "
                             f"({batch_size} x {num_replicas} processes)")

    def indices_for_step(self, step: int, _cache: dict | None = None) -> list[int]:
        epoch, pos = divmod(step, self.steps_per_epoch)
        perm = (_cache or {}).get(epoch)
        if perm is None:
            perm = epoch_permutation(self.n_items, self.seed, epoch)
            if _cache is not None:
                _cache.clear()
                _cache[epoch] = perm
        start = (pos * self.num_replicas + self.rank) * self.batch_size
        return perm[start:start + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        cache: dict = {}
        for step in range(self.start_step, self.total_steps):
            yield self.indices_for_step(step, cache)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)


def adamw_param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decay on weight matrices, none on biases and 1-D parameters (norms).

    The same split as timm's ``add_weight_decay`` used by the reference code: decaying a
    LayerNorm gain or a bias toward zero only hurts.
    """
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def split_param_groups(groups: list[dict], module: torch.nn.Module, **options) -> list[dict]:
    """``groups`` with ``module``'s parameters moved into copies of their groups that carry ``options`` (e.g. their
    own ``lr``: the schedulers scale each group's own rate); empty groups dropped."""
    ids = {id(p) for p in module.parameters()}
    out = []
    for group in groups:
        inside = [p for p in group["params"] if id(p) in ids]
        outside = [p for p in group["params"] if id(p) not in ids]
        out += [g for g in ({**group, "params": outside}, {**group, "params": inside, **options}) if g["params"]]
    return out


def warmup_cosine_scheduler(optimizer, warmup_steps: int, total_steps: int, num_processes: int = 1):
    """Linear warm-up then half-cycle cosine to zero, per step (diffusers' schedule, as the paper's).

    An Accelerate-prepared scheduler steps once per process per optimizer step, so the lengths
    are multiplied by ``num_processes`` (what the diffusers training scripts do too).
    """
    from diffusers.optimization import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=warmup_steps * num_processes,
                                           num_training_steps=max(1, total_steps) * num_processes)


def all_finite(accelerator, value: torch.Tensor) -> tuple[bool, float]:
    """Whether ``value`` is finite on every process, and its mean over processes.

    All ranks must agree before ``backward`` (DDP would hang if one rank skipped a step).
    """
    gathered = accelerator.gather(value.detach().float().reshape(1))
    finite = bool(torch.isfinite(gathered).all())
    return finite, float(gathered.mean())


class JsonlLog:
    """Append-only metrics log (one JSON object per line); only the main process writes."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()

    def truncate_after(self, step: int) -> None:
        """On resume, drop records a killed run logged past the checkpoint it resumes from."""
        if not self.enabled or not self.path.exists():
            return
        kept = [line for line in read_jsonl(self.path) if line.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records of a JSONL file; a torn last line (from a kill mid-write) is skipped."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                logger.warning("skipping a torn line in %s", path)
    return records


class Throughput:
    """Samples per second over a sliding window of recent steps (for the progress bar)."""

    def __init__(self, window: int = 20):
        self.window = window
        self._marks: list[tuple[float, int]] = []

    def update(self, samples: int) -> float:
        now = time.perf_counter()
        total = (self._marks[-1][1] if self._marks else 0) + samples
        self._marks.append((now, total))
        self._marks = self._marks[-self.window:]
        if len(self._marks) < 2:
            return float("nan")
        (t0, n0), (t1, n1) = self._marks[0], self._marks[-1]
        return (n1 - n0) / max(t1 - t0, 1e-9)


def cosine_lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate the schedule gives at ``step`` (for docs and tests; the loop uses the scheduler)."""
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
