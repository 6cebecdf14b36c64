"""The one seed rule: every random draw in the project takes a generator seeded from ``(seed, *keys)``.

Determinism and resume rest on one idea: nothing random depends on how far a process has run.
The data order of epoch ``e`` is a permutation seeded by ``(seed, STREAM_DATA, e)``, the masking
noise of step ``s`` on rank ``r`` by ``(seed, STREAM_MASK, s, r)``, and so on; a run resumed at step
``s`` therefore draws exactly what an uninterrupted run draws from step ``s`` on.
"""

from __future__ import annotations

import numpy as np
import torch

from dreamdiffusion.core.config import check_number

# Seeds a user gives (--seed, the app's seed box): torch generators take 64-bit seeds; one range for all.
MAX_SEED = 2**63 - 1


def check_seed(seed, what: str = "--seed") -> int:
    """``seed`` as an int in ``[0, MAX_SEED]``; a ConfigError saying the range otherwise."""
    return int(check_number(seed, what, 0, MAX_SEED, integer=True))


# Stream names keep the seeds of different uses apart (masking vs. data order vs. validation).
STREAM_DATA, STREAM_MASK, STREAM_VAL, STREAM_INIT = 1, 2, 3, 4
STREAM_SUBSET = 5  # which train images a run with fewer pairs keeps (data.pairs.subset)


def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``keys`` (numpy's SeedSequence, so nearby keys do not correlate)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) for k in keys]]).generate_state(2, np.uint64)[0]
               & 0x7FFF_FFFF_FFFF_FFFF)


def seeded_generator(seed: int, *keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded from ``(seed, *keys)``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derived_seed(seed, *keys))
    return gen


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) through Accelerate's ``set_seed``."""
    from accelerate.utils import set_seed

    set_seed(seed)


def epoch_permutation(n_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The order in which epoch ``epoch`` visits ``n_items`` items: a pure function of its arguments."""
    return torch.randperm(n_items, generator=seeded_generator(seed, STREAM_DATA, epoch))


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of optimizer step ``step`` on process ``rank`` (the same rule: ``derived_seed``)."""
    return derived_seed(seed, step, rank)


def sample_seed(seed: int, eeg_index: int, sample_index: int) -> int:
    """The seed of image ``sample_index`` generated from EEG ``eeg_index`` of a run seeded ``seed``.

    ``generate``, ``evaluate``, the validation images of Stage B, the app and ``stream`` all use it,
    so the same pipeline, EEG and seed give the same image wherever it is drawn.
    """
    return derived_seed(seed, eeg_index, sample_index)
