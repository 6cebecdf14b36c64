"""A pipeline folder's recommended generation settings: ``generation.json``, checked on every read and write.

What a model recommends (the guidance scale and sampler steps chosen on val, the CLIP guidance of its test images,
the low-level strength) rides with its folder, so that ``generate``, ``evaluate``, the app and ``stream`` draw
the way it was measured unless the user says otherwise
(:func:`dreamdiffusion.generation.resolve_generation_settings`; the low-level strength is read by
:meth:`dreamdiffusion.pipeline.DreamDiffusionPipeline.__call__` itself). Plain JSON on the ground floor: any layer
may read it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from dreamdiffusion.core.config import check_config_values, read_json_config
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import atomic_write_json

GENERATION_FILE = "generation.json"  # the model's recommended generation settings


def check_low_level_strength(value, path=None) -> float:
    """``value`` as a float in (0, 1]: the share of the schedule a latent guess is noised to (1: pure noise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"low_level_strength must be above 0 and at most 1, got {value!r}", path)
    return float(value)


def check_class_context_scale(value, path=None) -> float:
    """``value`` as a float >= 0: the weight a pipeline samples its EEG model's class context at (trained at 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"class_context_scale must be a number >= 0, got {value!r}", path)
    return float(value)


def check_generation_defaults(data, path=None) -> dict:
    """``data`` (a generation.json object) checked and normalised; ConfigError naming ``path`` otherwise."""
    check_config_values(data, path, GENERATION_FILE)  # types and bounds (guidance, steps), like every config
    if "guidance_scale" not in data:
        raise ConfigError(f"{GENERATION_FILE} has no guidance_scale", path)
    g = data["guidance_scale"]
    if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 1:
        raise ConfigError(f"guidance_scale must be a number >= 1, got {g!r}", path)
    steps = data.get("num_inference_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"num_inference_steps must be an integer >= 1 or null, got {steps!r}", path)
    if data.get("low_level_strength") is not None:  # (its type: check_config_values)
        check_low_level_strength(data["low_level_strength"], path)
    if data.get("class_context_scale") is not None:
        check_class_context_scale(data["class_context_scale"], path)
    for key in ("chosen_on", "steering_clip"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ConfigError(f"{key} must be a string or null, got {data[key]!r}", path)
    chosen_on = data.get("chosen_on")
    return {**data, "guidance_scale": float(g), "num_inference_steps": steps, "chosen_on": chosen_on}


def read_generation_defaults(folder) -> dict:
    """The checked ``generation.json`` of a pipeline folder; ``{}`` when the folder has none."""
    path = Path(os.fspath(folder), GENERATION_FILE)
    if not path.is_file():
        return {}
    return check_generation_defaults(read_json_config(path), path)


def write_generation_defaults(folder, guidance_scale: float, num_inference_steps: int | None = None,
                              chosen_on: str | None = None, clip_guidance: float | None = None,
                              steering_clip: str | None = None, low_level_strength: float | None = None,
                              clip_guidance_steps: int | None = None, class_context_scale: float | None = None) -> Path:
    """Write a pipeline folder's recommended settings (``generation.json``, atomically); returns its path.

    ``guidance_scale`` (>= 1) and ``num_inference_steps`` (>= 1, or None: no recommendation) are what
    ``dreamdiffusion generate``/``stream``/``app`` use when the user does not choose; ``chosen_on`` says how
    they were chosen (e.g. ``"val: CLIP 2-way identification of 128 generated images"``). ``clip_guidance`` and
    ``steering_clip``: the CLIP guidance ``generate`` applies when ``--clip-guidance`` is not given, and its CLIP;
    ``clip_guidance_steps``: its moves per sampler step (``--clip-guidance-steps``).
    ``low_level_strength``: how far the pipeline noises its EEG model's low-level latent guess before denoising
    (the default of every call; see :meth:`DreamDiffusionPipeline.__call__`). ``class_context_scale``: the weight of
    the EEG model's class context when it samples (its training weight is 1; likewise read by the pipeline itself).
    """
    folder = Path(os.fspath(folder))
    if not folder.is_dir():
        raise ConfigError("pipeline folder not found", folder)
    path = folder / GENERATION_FILE
    extra = {k: v for k, v in (("clip_guidance", clip_guidance), ("clip_guidance_steps", clip_guidance_steps),
                               ("steering_clip", steering_clip), ("low_level_strength", low_level_strength),
                               ("class_context_scale", class_context_scale))
             if v is not None}
    data = check_generation_defaults({"guidance_scale": guidance_scale, "num_inference_steps": num_inference_steps,
                                       "chosen_on": chosen_on, **extra}, path)
    atomic_write_json(path, data)
    return path


__all__ = ["GENERATION_FILE", "check_class_context_scale", "check_generation_defaults", "check_low_level_strength", "read_generation_defaults", "write_generation_defaults"]
