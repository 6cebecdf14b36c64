"""Shared bits of the finetune and generate commands."""

from __future__ import annotations

from dreamdiffusion.core.quiet import quiet_model_loading  # noqa: F401  (the one place: core/quiet.py)
