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


class DiskSpaceError(DreamDiffusionError):
    """The file system of an output lacks the space a write needs (checked before the write starts)."""


class EEGShapeError(ConfigError, ValueError):
    """EEG whose shape does not fit the model (also a ``ValueError``, as a shape error in PyTorch is)."""


def check_eeg_shape(shape, n_chans: int, n_times: int, sfreq: float | None = None,
                    source: str | os.PathLike | None = None) -> None:
    """Raise :class:`EEGShapeError` naming ``source`` unless ``shape`` is ``[batch, n_chans, n_times]``.

    The one check of the model's input shape: the encoder, the conditioner, the pipeline and the app
    call it, so a wrong window gives the same error, with the same advice, wherever it is caught.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise EEGShapeError(f"EEG must be [batch, channels, samples], got shape {shape}", source)
    if shape[1] != n_chans:
        raise EEGShapeError(
            f"the model expects {n_chans} EEG channels, found {shape[1]} (map the recording's channels onto the "
            f"model's with --channel-mapping, or train a model for {shape[1]} channels)", source)
    if shape[2] != n_times:
        rate = f" at {sfreq:g} Hz" if sfreq else ""
        raise EEGShapeError(
            f"the model expects windows of {n_times} samples{rate}, found {shape[2]} (resample/crop the EEG to the "
            "model's input; see preprocessing.json)", source)
