"""DreamDiffusion: generating images from brain EEG signals.

Where each part of the paper (Bai et al., arXiv 2306.16934) lives:

- EEG files -> standard model input ...... ``dreamdiffusion.data.io``, ``dreamdiffusion.data.transforms``
- pretraining corpus ..................... ``dreamdiffusion.data.corpus``
- Stage A, masked signal modeling ........ ``dreamdiffusion.models.eeg_encoder``, ``dreamdiffusion.training.pretrain``
- EEG-image pairs ........................ ``dreamdiffusion.data.pairs``
- Stage B, conditioning + CLIP alignment . ``dreamdiffusion.models.conditioner``, ``dreamdiffusion.training.finetune``
- generation ............................. ``dreamdiffusion.pipeline``
- evaluation ............................. ``dreamdiffusion.evaluation``
"""

import importlib

__version__ = "0.1.0"

# The public classes load on first use (PEP 562): importing diffusers takes seconds, and `import dreamdiffusion.core.files`
# (every command, every test module) should not pay for it. A saved DreamDiffusionPipeline's model_index.json names
# library "dreamdiffusion"; diffusers finds the classes again through getattr, which lands here.
_LAZY = {
    "EEGEncoder": "dreamdiffusion.models.eeg_encoder",
    "MaskedSignalModel": "dreamdiffusion.models.eeg_encoder",
    "EEGConditioner": "dreamdiffusion.models.conditioner",
    "DreamDiffusionPipeline": "dreamdiffusion.pipeline",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once: later lookups skip this function
        return value
    raise AttributeError(f"module 'dreamdiffusion' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
