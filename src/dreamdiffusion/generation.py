"""Write generated images for EEG from a dataset split or from a recording (``dreamdiffusion generate``).

Outputs (all written atomically: temporary name, then ``os.replace``):

- ``images/<nnnn>_<sample>.png``: ``num_images`` samples per EEG window;
- ``grid.png``: one row per EEG, the ground-truth image first when it is known;
- ``manifest.json``: the model, the EEG source of each row, seed, scheduler, steps, guidance (and where
  each came from: ``settings_source``) and files.

Steps or guidance left as ``None`` take the model's recommended value (the pipeline folder's
``generation.json``, see :func:`dreamdiffusion.core.generation_file.write_generation_defaults`), else
``DEFAULT_STEPS``/``DEFAULT_GUIDANCE``: :func:`resolve_generation_settings`.

Sample ``j`` of EEG ``i`` is drawn from its own generator seeded by ``(seed, i, j)``, so an image
does not depend on the batch it was made in or on ``--limit``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from dreamdiffusion.conditioning import (
    ConditioningPlan,
    build_pipeline,
    conditioning_record,
    plan_conditioning,
    recorded_setting,
)
from dreamdiffusion.core.config import MAX_CLIP_GUIDANCE_STEPS, MAX_GUIDANCE, MAX_STEPS, check_number
from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.core.files import atomic_write_json, atomic_write_png, check_output_folder, staged_folder
from dreamdiffusion.core.seeding import sample_seed
from dreamdiffusion.data.images import image_grid
from dreamdiffusion.data.io import read_raw
from dreamdiffusion.data.pairs import open_paired_dataset
from dreamdiffusion.data.transforms import MappedRecording
from dreamdiffusion.models import hub
from dreamdiffusion.pipeline import COMPILE_MODES, read_generation_defaults
from dreamdiffusion.steering import ClipGuidance, ClipRanker, predicted_embeddings

logger = logging.getLogger(__name__)


@dataclass
class EEGSource:
    """One EEG window to draw from, with what is known about it."""

    eeg: torch.Tensor  # [n_chans, n_times], the model's input
    source: dict  # JSON-able description (dataset/split/index or file/onset)
    image: object | None = None  # ground-truth PIL image, when known
    label: object | None = None


DEFAULT_STEPS = 25  # sampler steps when neither the user nor the model says
DEFAULT_GUIDANCE = 1.0  # no guidance, as the paper, when neither the user nor the model says

# Where a setting came from (the manifest's ``settings_source``).
SOURCE_GIVEN, SOURCE_MODEL, SOURCE_DEFAULT = "given", "model (generation.json)", "default"


def resolve_generation_settings(pipe, steps: int | None = None, guidance: float | None = None,
                                clip_guidance: float | None = None, low_level_strength: float | None = None,
                                clip_guidance_steps: int | None = None) -> dict:
    """The steps, guidance and CLIP guidance to use: given values win, then the model's ``generation.json``, then
    the defaults (CLIP guidance: 0, off; its moves per sampler step: 1).

    Returns ``{"steps": int, "guidance": float, "clip_guidance": float, "clip_guidance_steps": int,
    "settings_source": {...}}`` plus
    ``"model_recommends"`` (the pipeline's ``generation_defaults``) when the model has any.
    """
    recommended = dict(getattr(pipe, "generation_defaults", None) or {})

    def pick(given, key, default, cast):
        if given is not None:
            return cast(given), SOURCE_GIVEN
        if recommended.get(key) is not None:
            return cast(recommended[key]), SOURCE_MODEL
        return default, SOURCE_DEFAULT

    steps_used, steps_from = pick(steps, "num_inference_steps", DEFAULT_STEPS, int)
    guidance_used, guidance_from = pick(guidance, "guidance_scale", DEFAULT_GUIDANCE, float)
    clip_used, clip_from = pick(clip_guidance, "clip_guidance", 0.0, float)
    moves_used, moves_from = pick(clip_guidance_steps, "clip_guidance_steps", 1, int)
    out = {"steps": steps_used, "guidance": guidance_used, "clip_guidance": clip_used,
           "clip_guidance_steps": moves_used,
           "settings_source": {"steps": steps_from, "guidance": guidance_from, "clip_guidance": clip_from,
                               "clip_guidance_steps": moves_from}}
    # The low-level strength matters only to a pipeline whose EEG model guesses latents; the pipeline applies the
    # model's own when the call gives none, so it is reported here, not defaulted twice.
    if low_level_strength is not None or recommended.get("low_level_strength") is not None:
        strength, source = pick(low_level_strength, "low_level_strength", 1.0, float)
        out["low_level_strength"] = strength
        out["settings_source"]["low_level_strength"] = source
    if recommended:
        out["model_recommends"] = recommended
    return out


@dataclass
class GenerateConfig:
    model: str  # DreamDiffusionPipeline folder (or a finetune output folder holding pipeline/)
    output: str
    num_images: int = 5  # samples per EEG (paper: 5)
    steps: int | None = DEFAULT_STEPS  # sampler steps (paper: 250 PLMS); None: the model's recommendation
    guidance: float | None = DEFAULT_GUIDANCE  # CFG scale (1 = none, as the paper); None: the model's
    seed: int = 0
    scheduler: str | None = None  # dpm | pndm | ddim | euler; None keeps the pipeline's (DPM-Solver++)
    batch_size: int = 8  # EEG windows per pipeline call
    compile: str = "none"  # none | default | reduce-overhead | max-autotune: the pipeline's fast path
    overwrite: bool = False  # replace a non-empty output folder
    model_info: dict = field(default_factory=dict)
    conditioning: str = "auto"  # auto | tokens | ip-adapter: see plan_conditioning
    base: str | None = None  # an ip-adapter pipeline built on the fly: its base and adapter (plan_conditioning)
    ip_adapter: str | None = None
    candidates: int = 1  # best-of-N: draw N per image, keep the closest to the EEG's predicted CLIP embedding
    clip_guidance: float | None = None  # CLIP guidance toward it (share of the latents' norm per step; 0: off; None:
    # the model's generation.json, else 0)
    clip_guidance_steps: int | None = None  # its moves per sampler step (None: the model's generation.json, else 1)
    clip: str | None = None  # the CLIP of both (None: the one the model was trained against)
    low_level_strength: float | None = None  # img2img from the EEG model's latent guess (None: the model's, else 1)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_pipeline(model: str | os.PathLike | ConditioningPlan | None, scheduler: str | None = None,
                  device: str | None = None, dtype: str = "float32", compile: str = "none", conditioning: str = "auto",
                  base: str | None = None, ip_adapter: str | None = None):
    """The pipeline at ``model`` (None: the shipped default pipeline) on ``device`` (default: CUDA when there is
    one) in ``dtype``, drawing with the route ``conditioning`` chooses (:func:`plan_conditioning`; ``model`` may be
    a plan already made).

    ``compile`` other than ``"none"`` turns on the fast path (channels-last, ``torch.compile``'d UNet in that
    mode; see :meth:`DreamDiffusionPipeline.enable_fast_path`).
    """
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if compile not in COMPILE_MODES:
        raise ConfigError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
    plan = model if isinstance(model, ConditioningPlan) else plan_conditioning(model, conditioning, base, ip_adapter)
    pipe = build_pipeline(plan, DTYPES[dtype])
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        pipe.to(device)
    except (RuntimeError, AssertionError) as exc:
        raise ConfigError(f"cannot use device {device!r}: {exc}") from exc
    if scheduler:
        pipe.set_scheduler(scheduler)
    pipe.set_progress_bar_config(disable=True)
    if compile != "none":
        pipe.enable_fast_path(compile)
    return pipe


def sources_from_dataset(dataset: str, split: str, options: dict, limit: int | None = None) -> list[EEGSource]:
    ds = open_paired_dataset(dataset, split, **options)
    n = len(ds) if limit is None else min(int(limit), len(ds))
    out = []
    for i in range(n):
        item = ds[i]
        out.append(EEGSource(eeg=torch.as_tensor(item["eeg"], dtype=torch.float32),
                             source={"dataset": dataset, "split": split, "index": i,
                                     "image_name": item.get("image_name"), "subject": item.get("subject")},
                             image=item.get("image"), label=item.get("label")))
    if not out:
        raise DataError(f"the {split} split of {dataset} is empty")
    return out


def sources_from_file(path: str | os.PathLike, spec, onsets: list[float], sfreq: float | None = None) -> list[EEGSource]:
    """Windows of a recording at ``onsets`` (seconds), prepared by ``spec`` (the model's InputSpec) through
    :class:`~dreamdiffusion.data.transforms.MappedRecording`, the path the web app and the stream take too: the
    channels are mapped once for the file, not once per window."""
    recording = MappedRecording(read_raw(path, sfreq=sfreq), spec, source=path)
    channels = recording.channels()  # the same for every window of the file
    return [EEGSource(eeg=torch.from_numpy(np.asarray(recording.window(onset), dtype=np.float32)),
                      source={"file": os.fspath(path), "onset_s": float(onset), "channels": channels})
            for onset in onsets or [0.0]]


def draw_images(pipe, eegs: Sequence[torch.Tensor] | torch.Tensor, num_images: int, steps: int, guidance: float,
                seed: int, batch_size: int | None = None, first_index: int = 0, progress: bool = False,
                callback_on_step_end=None, candidates: int = 1, ranker: ClipRanker | None = None,
                guidance_clip: ClipGuidance | None = None,
                low_level_strength: float | None = None) -> list[list[Image.Image]]:
    """``num_images`` PIL images for each EEG window ``[C, T]``: the one sampler of the project.

    Image ``j`` of EEG ``first_index + i`` starts from its own generator seeded by
    :func:`dreamdiffusion.core.seeding.sample_seed` ``(seed, first_index + i, j)``, so it does not depend on
    the batch it is drawn in: ``generate``, ``evaluate``, val selection, Stage B's validation images, the app
    and ``stream`` give the same image for the same pipeline, EEG, index and seed. ``callback_on_step_end`` goes
    to the pipeline (the app's progress bar).

    ``candidates`` > 1 (best-of-N, :mod:`dreamdiffusion.steering`): ``num_images x candidates`` images are drawn
    per EEG (seeds ``j = 0 ...`` as above) and ``ranker`` keeps the ``num_images`` closest to the EEG's predicted
    CLIP embedding, best first. ``candidates=1`` draws exactly the images above. ``guidance_clip``: CLIP guidance
    toward that embedding after every sampler step (:class:`dreamdiffusion.steering.ClipGuidance`).
    ``low_level_strength``: passed to the pipeline (None: its own default, the model's recommendation).
    """
    check_number(candidates, "--candidates", 1, None, integer=True)
    if candidates > 1 and ranker is None:
        raise ConfigError("--candidates above 1 needs a CLIP to rank the candidates with (--clip)")
    eegs = [torch.as_tensor(e, dtype=torch.float32) for e in eegs]
    step = batch_size or max(1, len(eegs))
    drawn = num_images * candidates
    out: list[list[Image.Image]] = []
    for b0 in tqdm(range(0, len(eegs), step), desc="generate", unit="batch", disable=not progress):
        chunk = torch.stack(eegs[b0:b0 + step])
        seeds = [sample_seed(seed, first_index + b0 + i, j) for i in range(len(chunk)) for j in range(drawn)]
        callback, target = callback_on_step_end, None
        if guidance_clip is not None:
            target = predicted_embeddings(pipe, chunk, guidance_clip.width(), "--clip-guidance")
            callback = guidance_clip.callback(target.repeat_interleave(drawn, dim=0), then=callback_on_step_end)
        extra = {} if callback is None else {"callback_on_step_end": callback}
        if low_level_strength is not None:
            extra["low_level_strength"] = low_level_strength
        images = pipe(chunk, num_images_per_eeg=drawn, num_inference_steps=steps, guidance_scale=guidance,
                      generator=[torch.Generator().manual_seed(s) for s in seeds], output_type="pil", **extra).images
        for im, s in zip(images, seeds):
            im.info["sample_seed"] = s  # which draw an image is, also after the candidates are ranked
        rows = [list(images[i * drawn:(i + 1) * drawn]) for i in range(len(chunk))]
        out += rows if candidates == 1 else ranker.select(pipe, chunk, rows, num_images, target)
    return out


def generate_images(config: GenerateConfig, sources: list[EEGSource], pipe=None) -> dict:
    """Draw ``config.num_images`` images per source into ``config.output``; return the manifest.

    The output folder follows the one policy of :func:`dreamdiffusion.core.files.staged_folder`: written to a
    temporary sibling and renamed into place when complete, a non-empty ``output`` refused unless
    ``config.overwrite``; a killed run leaves the previous output as it was.
    """
    check_number(config.num_images, "--num-images", 1, None, integer=True)
    if config.steps is not None:
        check_number(config.steps, "--steps", 1, MAX_STEPS, integer=True)
    if config.guidance is not None:
        check_number(config.guidance, "--guidance", 1.0, MAX_GUIDANCE)
    check_number(config.batch_size, "--batch-size", 1, None, integer=True)
    check_output_folder(config.output, config.overwrite)
    if not sources:
        raise DataError("no EEG windows to generate from")
    if pipe is None:
        pipe = load_pipeline(config.model, config.scheduler, compile=config.compile, conditioning=config.conditioning,
                             base=config.base, ip_adapter=config.ip_adapter)
    else:
        if config.scheduler:
            pipe.set_scheduler(config.scheduler)
        if config.compile != "none":
            pipe.enable_fast_path(config.compile)
    settings = resolve_generation_settings(pipe, config.steps, config.guidance, config.clip_guidance,
                                           config.low_level_strength, config.clip_guidance_steps)
    ranker, guide = steering(config.candidates, settings["clip_guidance"], config.clip, config.model,
                             clip_guidance_steps=settings["clip_guidance_steps"])
    if ranker is not None or guide is not None:
        settings.update(candidates=config.candidates, steering_clip=(ranker or guide).source)
    with staged_folder(config.output, config.overwrite) as out:
        manifest = _write_images(config, sources, pipe, settings, out, ranker, guide)
    logger.info("wrote %d images for %d EEG windows to %s", len(sources) * config.num_images, len(sources),
                config.output)
    return manifest


def steering_clip(clip: str | None, model=None) -> str:
    """The CLIP that steers: ``clip``, else the model folder's recommended one (``generation.json``:
    ``steering_clip``), else the one it was trained against; a one-line ConfigError when there is none."""
    folder = None if model is None else Path(os.fspath(model))
    recommended = read_generation_defaults(folder).get("steering_clip") if folder and folder.is_dir() else None
    spec = clip or recommended or recorded_setting(model, "clip")
    if spec is None:
        raise ConfigError("--candidates and --clip-guidance steer by CLIP, and this model records no CLIP it was "
                          "trained against: pass --clip (the CLIP of its alignment, e.g. builtin-tiny)", model)
    return spec


def steering(candidates: int, clip_guidance: float, clip: str | None, model=None,
             device: str | None = None, clip_guidance_steps: int = 1) -> tuple[ClipRanker | None, ClipGuidance | None]:
    """The best-of-N ranker (None for 1 candidate) and the CLIP guidance (None for 0) of ``--candidates``,
    ``--clip-guidance`` and ``--clip-guidance-steps``, sharing one CLIP: ``clip``, else the one ``model`` was trained
    against."""
    check_number(candidates, "--candidates", 1, None, integer=True)
    check_number(clip_guidance, "--clip-guidance", 0.0, 1.0)
    check_number(clip_guidance_steps, "--clip-guidance-steps", 1, MAX_CLIP_GUIDANCE_STEPS, integer=True)
    if candidates == 1 and clip_guidance == 0:
        return None, None
    loaded = hub.load_clip(steering_clip(clip, model))
    return (ClipRanker(loaded, device or "cpu") if candidates > 1 else None,
            ClipGuidance(loaded, clip_guidance, device or "cpu", int(clip_guidance_steps)) if clip_guidance > 0
            else None)


def _write_images(config: GenerateConfig, sources: list[EEGSource], pipe, settings: dict, out: Path,
                  ranker: ClipRanker | None = None, guide: ClipGuidance | None = None) -> dict:
    """The images, grid and manifest of :func:`generate_images`, written into the folder ``out``."""
    steps, guidance = settings["steps"], settings["guidance"]
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, entries = [], []
    for b0 in range(0, len(sources), config.batch_size):
        chunk = sources[b0:b0 + config.batch_size]
        for s in chunk:
            pipe.eeg_conditioner.check_eeg(s.eeg[None], s.source.get("file") or s.source.get("dataset"))
        drawn = draw_images(pipe, [s.eeg for s in chunk], config.num_images, steps, guidance, config.seed,
                            first_index=b0, candidates=config.candidates, ranker=ranker, guidance_clip=guide,
                            low_level_strength=settings.get("low_level_strength"))
        for i, (s, samples) in enumerate(zip(chunk, drawn)):
            k = b0 + i
            files = []
            for j, im in enumerate(samples):
                name = f"images/{k:04d}_{j}.png"
                atomic_write_png(out / name, im)
                files.append(name)
            truth = None
            if s.image is not None:
                truth = f"images/{k:04d}_truth.png"
                atomic_write_png(out / truth, s.image.convert("RGB").resize(samples[0].size))
            rows.append(([s.image] if s.image is not None else []) + list(samples))
            entries.append({"index": k, "eeg": s.source, "label": s.label, "ground_truth": truth, "images": files,
                            "seeds": [im.info.get("sample_seed") for im in samples]})
    size = rows[0][-1].size
    if any(s.image is not None for s in sources):  # keep the columns aligned: blank where no truth
        rows = [r if s.image is not None else [Image.new("RGB", size, "white")] + r for r, s in zip(rows, sources)]
    atomic_write_png(out / "grid.png", image_grid(rows))
    manifest = {
        "model": os.fspath(config.model), **config.model_info,
        "scheduler": type(pipe.scheduler).__name__, **settings,
        "seed": config.seed, "num_images": config.num_images, "grid": "grid.png",
        "compile": (getattr(pipe, "fast_path", None) or {}).get("compile", "none"),
        "conditioning": conditioning_record(pipe),
        "grid_layout": "one row per EEG; first column the ground truth when known" if any(
            s.image is not None for s in sources) else "one row per EEG",
        "items": entries,
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


__all__ = ["steering", "DEFAULT_GUIDANCE", "DEFAULT_STEPS", "EEGSource", "GenerateConfig", "draw_images",
           "generate_images", "load_pipeline", "steering_clip",
           "resolve_generation_settings", "sources_from_dataset", "sources_from_file"]
