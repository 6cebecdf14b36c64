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

__version__ = "0.1.0"

# Model classes are exported at the top level so that a saved DreamDiffusionPipeline
# (model_index.json names library "dreamdiffusion") can find them again.
from dreamdiffusion.models.eeg_encoder import EEGEncoder, MaskedSignalModel  # noqa: E402,F401

try:  # Stage B parts; present once the conditioner module exists.
    from dreamdiffusion.models.conditioner import EEGConditioner  # noqa: F401
except ImportError:  # pragma: no cover
    pass


def __getattr__(name):  # DreamDiffusionPipeline on first use: importing diffusers' pipelines takes seconds
    if name == "DreamDiffusionPipeline":
        from dreamdiffusion.pipeline import DreamDiffusionPipeline

        return DreamDiffusionPipeline
    raise AttributeError(f"module 'dreamdiffusion' has no attribute {name!r}")
