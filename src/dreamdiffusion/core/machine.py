"""What machine a result was measured on: the one description every run record and benchmark writes.

The CPU's model and the vector instructions torch's kernels use are part of a result: the same seed and code on an
AVX2 host and an AVX-512 host give numbers that differ in the third decimal (float sums in another order) and walls a
third apart.
"""

from __future__ import annotations

import os
import platform

import torch

# Linux's CPU description: the one place the model name is written (``platform.processor()`` gives only the
# architecture there). Other systems have no such file and fall back to ``platform``.
LINUX_CPUINFO = "/proc/cpuinfo"


def cpu_model() -> str | None:
    """The CPU's ``model name`` (Linux); None where the system does not say."""
    try:
        with open(LINUX_CPUINFO, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        return None
    return None


def machine_description() -> str:
    """The CPU's model and torch's instruction level, the cores visible and torch's version, in one line."""
    model = cpu_model() or platform.processor() or platform.machine()
    isa = torch.backends.cpu.get_cpu_capability()
    return (f"{platform.machine()} CPU ({model}, {isa}), {os.cpu_count()} cores visible, torch {torch.__version__} "
            f"({platform.system()})")


__all__ = ["cpu_model", "machine_description", "LINUX_CPUINFO"]
