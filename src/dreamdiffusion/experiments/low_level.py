"""The demo's low-level route, for either recipe: a ridge guess of the seen image's VAE latents from the EEG.

ATM's low-level route (and, in pixels, the benchmark's own ridge baseline): a linear map from the EEG binned in time
to the VAE latents of the image seen, fitted in closed form on the train split
(:func:`dreamdiffusion.training.prior.fit_latent_decoder`). The pipeline noises that guess part-way and denoises it
under the EEG's conditioning (img2img; ``low_level_strength``, 1 = off). The guess carries *how* the image was drawn
(the layout a class lookup cannot know); the conditioning carries what it shows.

- :func:`fit_latent_stage` adds the decoder to a saved pipeline of either kind: the paper's EEG-token conditioner
  (not the paper's method: an addition after Stage B, which val can switch off) or the modern recipe's
  image-embedding conditioner.
- :func:`low_level_stage` chooses the strength on val (CLIP 2-way of generated val images; never the judge, never
  test) and records it in the pipeline's ``generation.json``, where generate, evaluate, the app and the stream read it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from dreamdiffusion.core.files import atomic_save_pretrained, atomic_write_json
from dreamdiffusion.data.pairs import keep_fraction_of_images
from dreamdiffusion.data.synthetic import SyntheticPairs
from dreamdiffusion.evaluation.selection import choose_low_level_strength, distinct_image_items
from dreamdiffusion.models import hub
from dreamdiffusion.pipeline import DreamDiffusionPipeline, read_generation_defaults, write_generation_defaults
from dreamdiffusion.training.prior import fit_latent_decoder

if TYPE_CHECKING:  # (demo imports this module: the type only, no import cycle at run time)
    from dreamdiffusion.experiments.settings import DemoConfig

logger = logging.getLogger(__name__)


def latent_shape(unet_config) -> list[int]:
    """The shape of the latents a UNet of ``unet_config`` denoises, ``[channels, size, size]``."""
    cfg = unet_config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    return [int(cfg.in_channels), int(size), int(size)]


def fit_pipeline_latents(pipe: DreamDiffusionPipeline, bench: Path, cfg: DemoConfig) -> dict:
    """Give ``pipe``'s EEG model a latent decoder fitted on the benchmark's train split (the same share of its images
    as Stage B and the baselines see: ``settings.pairs_fraction``). Returns the fit's record."""
    s = cfg.settings
    conditioner = pipe.eeg_conditioner
    decoder = conditioner.latent_decoder
    if decoder is None:
        decoder = conditioner.add_latent_decoder(latent_shape(pipe.unet.config), s.low_level_bins)
    train = keep_fraction_of_images(SyntheticPairs(bench, "train"), s.pairs_fraction, cfg.seed)
    return fit_latent_decoder(decoder, train, pipe.vae, pipe.image_processor)


def fit_latent_stage(pipeline: Path, bench: Path, cfg: DemoConfig) -> dict:
    """:func:`fit_pipeline_latents` on the saved pipeline at ``pipeline``; only its EEG model changed, so only that
    subfolder is written back (atomically)."""
    pipe = DreamDiffusionPipeline.from_pretrained(pipeline)
    fit = fit_pipeline_latents(pipe, bench, cfg)
    atomic_save_pretrained(pipe.eeg_conditioner, Path(pipeline) / "eeg_conditioner")
    return fit


def low_level_stage(out: Path, bench: Path, pipeline: Path, cfg: DemoConfig, guidance: float,
                    name: str = "low_level") -> dict:
    """The low-level strength of the test images, chosen on val at ``guidance`` among
    ``settings.strength_grid(cfg.recipe)`` and recorded in the pipeline's generation.json (where every later call reads
    it). Writes ``OUTPUT/<name>.json`` and returns it."""
    s = cfg.settings
    pipe = DreamDiffusionPipeline.from_pretrained(pipeline)
    pipe.set_progress_bar_config(disable=True)
    items = distinct_image_items(SyntheticPairs(bench, "val"), s.guidance_val_images)
    clip = hub.load_clip(cfg.clip)
    best, records = choose_low_level_strength(pipe, items, clip.model, clip.processor, s.strength_grid(cfg.recipe),
                                              s.steps, guidance, cfg.seed)
    chosen_on = f"val: CLIP 2-way identification of images generated for {len(items)} distinct val images"
    result = {"low_level_strength": best, "guidance": guidance, "chosen_on": chosen_on, "records": records}
    atomic_write_json(out / f"{name}.json", result)
    # the guidance stage's recommendation (none when the settings fix the guidance), plus the strength
    write_generation_defaults(pipeline, **{"guidance_scale": guidance, "num_inference_steps": s.steps,
                                           "chosen_on": chosen_on, **read_generation_defaults(pipeline),
                                           "low_level_strength": best})
    logger.info("low-level strength %.2f (%s)", best, chosen_on)
    return result


__all__ = ["latent_shape", "fit_pipeline_latents", "fit_latent_stage", "low_level_stage"]
