"""Shared bits of the finetune and generate commands."""

from __future__ import annotations


def quiet_model_loading() -> None:
    """No per-file loading bars from diffusers/transformers on the terminal (errors stay one line)."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
