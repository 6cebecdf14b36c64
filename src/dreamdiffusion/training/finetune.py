"""Stage B: fine-tune Stable Diffusion on EEG-image pairs with CLIP alignment (Accelerate).

Loss per batch (paper, Sec. 3.3-3.4)::

    loss = MSE(eps_pred, eps) + clip_weight * (1 - cos(CLIP head(EEG tokens), CLIP image_embeds(image)))

- The diffusion term is Stable Diffusion's epsilon-prediction loss on VAE latents of the paired
  image, with the noise schedule taken from the base's scheduler config (SD 1.x: scaled_linear
  0.00085-0.012, 1000 steps).
- CLIP is truly frozen: ``requires_grad_(False)``, ``eval()``, embeddings computed once per batch
  under ``torch.no_grad`` (the reference let CLIP's ``layer_norm2`` train by a substring match).
- Condition dropout (default 0.1) swaps the EEG context for the learned null context, which
  makes classifier-free guidance possible at generation time.

What trains (``--train``): ``paper`` = EEG encoder + mappers + CLIP head + time conditioning +
every UNet ``attn2`` and the ``norm2`` LayerNorm right before it (inside the transformer blocks
only, not the ResNet blocks' GroupNorms); ``lora`` = the conditioner + peft LoRA adapters on the
UNet's attention projections; ``encoder`` = the conditioner only. The VAE is always frozen.

Determinism: every random draw of optimizer step ``s`` (image augmentation, timesteps, noise,
dropout, VAE posterior sample) comes from a generator seeded by ``(seed, s, rank)`` and the data
order of epoch ``e`` from ``(seed, e)``. Resuming from a checkpoint therefore continues exactly
as an uninterrupted run would (bit-exact on the CPU).

Model selection uses the **val** split only (val loss at fixed noise); the test split is never read.
"""

from __future__ import annotations

import random

import torch

from dreamdiffusion.training.finetune_config import (  # noqa: F401
    BEST_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    PIPELINE_DIR,
    SELECT_METRICS,
    TRAIN_MODES,
    FinetuneConfig,
)
from dreamdiffusion.training.finetune_trainer import Trainer
from dreamdiffusion.training.stageb import (  # noqa: F401
    TrainableSystem,
    configure_trainable,
    open_datasets,
    paper_unet_parameters,
    sample_timesteps,
    timestep_weights,
)

# The trainer's old private name (tests and scripts of earlier versions import it from here).
_Trainer = Trainer


def finetune(config: FinetuneConfig, train_dataset=None, val_dataset=None):
    """Run Stage B; return the folder of the final :class:`DreamDiffusionPipeline`.

    ``train_dataset`` / ``val_dataset`` (items: dicts with ``eeg`` [C, T] and ``image`` PIL) replace
    ``config.dataset`` when given (the demo and tests pass in-memory datasets).
    """
    return prepared_trainer(config, train_dataset, val_dataset).run()


def prepared_trainer(config: FinetuneConfig, train_dataset=None, val_dataset=None) -> Trainer:
    """A :class:`Trainer` after its setup (frozen targets, the tokenizer's start, the CLIP warm-up), before the
    joint phase: :func:`finetune` runs it on; ``benchmarks/head_val.py`` scores the warm-up's CLIP head from it."""
    config.validate()
    if train_dataset is None:
        train_dataset, opened_val = open_datasets(config)
        val_dataset = opened_val if val_dataset is None else val_dataset
    random.seed(config.seed)
    torch.manual_seed(config.seed)  # only affects freshly initialised layers (mappers, null context)
    trainer = Trainer(config, train_dataset, val_dataset)
    trainer.setup()
    return trainer


__all__ = ["FinetuneConfig", "finetune", "prepared_trainer", "TRAIN_MODES", "paper_unet_parameters", "configure_trainable",
           "TrainableSystem", "Trainer"]
