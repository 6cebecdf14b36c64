"""One error family. The CLI prints ``error: <message>`` for these and exits non-zero."""

from __future__ import annotations

import os


class DreamDiffusionError(Exception):
    """Base class of every error the project raises on purpose.

    ``path`` names the file or folder at fault; the message says what is wrong and, where
    there is one, how to fix it.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class EEGReadError(DreamDiffusionError):
    """An EEG file cannot be read or holds unusable data (NaN/Inf, too short, wrong shape)."""


class DataError(DreamDiffusionError):
    """A dataset, split file, image or corpus is missing, malformed or inconsistent."""


class ConfigError(DreamDiffusionError):
    """A model folder, preset or option does not fit (incompatible config, unknown base model)."""


class CheckpointError(DreamDiffusionError):
    """A checkpoint is missing, incomplete or unsafe to load."""


class TrainingError(DreamDiffusionError):
    """Training cannot go on (a NaN/Inf loss, for example); the last good checkpoint is kept."""
