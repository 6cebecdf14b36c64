"""The one place where what libraries print reaches the user: silenced, or turned into one line.

A command's output is its own result and, on failure, one ``error:`` line. Libraries speak in
three ways, each handled here: Python warnings (deprecations are for developers and are dropped; any
other warning becomes one ``warning: <first line>`` line, each message once), loggers (diffusers,
transformers, accelerate, MNE and the HTTP stack only reach the terminal at ERROR), and progress bars
while weights load (off). ``--debug`` shows everything as the libraries print it.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

NOISY_LOGGERS = ("mne", "httpx", "urllib3", "matplotlib", "PIL", "accelerate", "diffusers", "transformers",
                 "huggingface_hub", "torch", "gradio")
_seen: set[tuple[type, str]] = set()


def one_line(text: object, limit: int = 300) -> str:
    """``text`` as a single line: whitespace runs (newlines included) become one space, cut at ``limit``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    first = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    key = (category, first)
    if key in _seen:
        return
    _seen.add(key)
    (file or sys.stderr).write(f"warning: {one_line(first)}\n")


def quiet_libraries(debug: bool = False) -> None:
    """Set up the process for a command: library loggers at ERROR, warnings one line each (unless ``debug``)."""
    if debug:
        for name in NOISY_LOGGERS[:-2]:  # torch's and gradio's DEBUG logs are for their own developers
            logging.getLogger(name).setLevel(logging.DEBUG)
        return
    for var, value in (("DIFFUSERS_VERBOSITY", "error"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("GRADIO_ANALYTICS_ENABLED", "False")):
        os.environ.setdefault(var, value)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.showwarning = _show_warning


def quiet_model_loading() -> None:
    """No per-file loading bars from diffusers/transformers (their imports are heavy: call where models load)."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
