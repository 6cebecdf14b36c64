"""EEG data: reading recordings, preparing model windows, the pretraining corpus and paired datasets.

The names a user looks for first are importable from here::

    from dreamdiffusion.data import EEGCVPR40, ThingsEEG2, FolderPairs, read_raw, build_corpus, CorpusDataset

They are resolved on first use (PEP 562 ``__getattr__``): importing one submodule, say
``dreamdiffusion.data.montage``, must not pull in torch and every dataset reader with it.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it
_EXPORTS = {
    "EEGCVPR40": "dreamdiffusion.data.pairs",
    "ThingsEEG2": "dreamdiffusion.data.pairs",
    "FolderPairs": "dreamdiffusion.data.pairs",
    "open_paired_dataset": "dreamdiffusion.data.pairs",
    "read_raw": "dreamdiffusion.data.io",
    "build_corpus": "dreamdiffusion.data.corpus",
    "CorpusDataset": "dreamdiffusion.data.corpus",
    "InputSpec": "dreamdiffusion.data.transforms",
    "recording_window": "dreamdiffusion.data.transforms",
    "MappedRecording": "dreamdiffusion.data.transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
