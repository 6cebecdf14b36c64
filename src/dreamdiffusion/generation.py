"""Write generated images for EEG from a dataset split or from a recording (``dreamdiffusion generate``).

Outputs (all written atomically: temporary name, then ``os.replace``):

- ``images/<nnnn>_<sample>.png``: ``num_images`` samples per EEG window;
- ``grid.png``: one row per EEG, the ground-truth image first when it is known;
- ``manifest.json``: the model, the EEG source of each row, seed, scheduler, steps, guidance (and where
  each came from: ``settings_source``) and files.

Steps or guidance left as ``None`` take the model's recommended value (the pipeline folder's
``generation.json``, see :func:`dreamdiffusion.pipeline.write_generation_defaults`), else
``DEFAULT_STEPS``/``DEFAULT_GUIDANCE``: :func:`resolve_generation_settings`.

Sample ``j`` of EEG ``i`` is drawn from its own generator seeded by ``(seed, i, j)``, so an image
does not depend on the batch it was made in or on ``--limit``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DConditionModel
from PIL import Image
from tqdm.auto import tqdm

from dreamdiffusion.core.config import (
    MAX_GUIDANCE,
    MAX_STEPS,
    check_model_folder,
    check_model_index,
    check_number,
    read_json_config,
)
from dreamdiffusion.core.constants import BUILTIN_NAME
from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.core.files import (
    atomic_write_json,
    atomic_write_png,
    check_output_folder,
    staged_folder,
)
from dreamdiffusion.core.seeding import sample_seed
from dreamdiffusion.data.images import image_grid
from dreamdiffusion.data.io import read_raw
from dreamdiffusion.data.pairs import open_paired_dataset
from dreamdiffusion.data.transforms import recording_window
from dreamdiffusion.models import hub
from dreamdiffusion.models.conditioner import EEGConditioner
from dreamdiffusion.models.encoders import ALIGNED_CONFIG_NAME, load_aligned_encoder
from dreamdiffusion.models.image_conditioner import ImageEmbeddingConditioner
from dreamdiffusion.models.ip_adapter import (
    IPAdapterSource,
    adapter_image_embed_dim,
    recorded_image_embed_norm,
    resolve_ip_adapter,
)
from dreamdiffusion.pipeline import (
    COMPILE_MODES,
    CONDITIONINGS,
    PREPROCESSING_FILE,
    DreamDiffusionPipeline,
    resolve_pipeline_folder,
)

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


def resolve_generation_settings(pipe, steps: int | None = None, guidance: float | None = None) -> dict:
    """The steps and guidance to use: given values win, then the model's ``generation.json``, then the defaults.

    Returns ``{"steps": int, "guidance": float, "settings_source": {"steps": ..., "guidance": ...}}`` plus
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
    out = {"steps": steps_used, "guidance": guidance_used,
           "settings_source": {"steps": steps_from, "guidance": guidance_from}}
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


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# ------------------------------------------------------------------------------------------ conditioning routes
# ``--conditioning``: "auto" is the route the model folder was saved with (an aligned encoder has only one).
CONDITIONING_CHOICES = ("auto", *CONDITIONINGS)
# What a trained folder records about its training (written by finetune / align; read here as JSON only).
TRAINING_CONFIG_FILES = ("finetune_config.json", "align_config.json")
ALIGNED_ENCODER = "aligned encoder"  # ConditioningPlan.kind of an align output folder


def recorded_setting(model: str | os.PathLike | None, key: str) -> str | None:
    """A setting (``clip``, ``base``, ``dataset``) a model folder was trained with: its ``finetune_config.json``
    (a tokens pipeline) or ``align_config.json`` (an aligned encoder), beside or above the folder; else None."""
    if model is None:
        return None
    for folder in (Path(model), Path(model).parent):
        for name in TRAINING_CONFIG_FILES:
            if (folder / name).is_file():
                try:
                    value = json.loads((folder / name).read_text()).get(key)
                except (OSError, ValueError, AttributeError):
                    continue
                if value:
                    return str(value)
    return None


def aligned_encoder_folder(model: str | os.PathLike | None) -> Path | None:
    """The aligned encoder (``dreamdiffusion align``'s output, or a folder holding one as ``encoder/``) that
    ``model`` names; None when it names something else."""
    if model is None:
        return None
    path = Path(os.fspath(model)).expanduser()
    for folder in (path, path / "encoder"):
        config = folder / "config.json"
        if config.is_file() and not (folder / "model_index.json").is_file() \
                and read_json_config(config).get("_class_name") == ALIGNED_CONFIG_NAME:
            return folder
    return None


@dataclass(frozen=True)
class ConditioningPlan:
    """How a model folder becomes the pipeline that draws: loaded as saved, or an ``ip-adapter`` pipeline built
    around its EEG model with ``base`` + ``ip_adapter`` (both set exactly then)."""

    folder: Path
    kind: str  # what the folder is: "tokens" or "ip-adapter" (a saved pipeline), or ALIGNED_ENCODER
    route: str  # the conditioning the images are drawn with: "tokens" or "ip-adapter"
    requested: str  # what --conditioning asked for: auto, tokens or ip-adapter
    base: str | None = None
    ip_adapter: str | None = None

    @property
    def built(self) -> bool:
        return self.base is not None


def plan_conditioning(model: str | os.PathLike | None = None, conditioning: str = "auto", base: str | None = None,
                      ip_adapter: str | None = None) -> ConditioningPlan:
    """The route ``--conditioning`` takes on ``model`` (None: the shipped pipeline), decided from the folder's JSON
    alone (nothing is loaded); a one-line ConfigError where that route cannot be taken.

    - ``auto``: the route the pipeline was saved with; an aligned encoder's only one, ``ip-adapter``;
    - ``ip-adapter``: an ip-adapter pipeline as saved; an aligned encoder, or the CLIP head of a tokens
      pipeline's conditioner, through ``base``'s UNet + the ``ip_adapter`` (built on the fly);
    - ``tokens``: a tokens pipeline as saved (an ip-adapter pipeline or an aligned encoder has no EEG tokens).

    ``base`` (default: the base a tokens pipeline was fine-tuned from, else builtin-tiny) and ``ip_adapter``
    (default builtin-tiny) choose the parts of a pipeline built on the fly; given for a saved one, they are refused.
    """
    if conditioning not in CONDITIONING_CHOICES:
        raise ConfigError(f"--conditioning must be one of {', '.join(CONDITIONING_CHOICES)}, got {conditioning!r}")
    folder = aligned_encoder_folder(model)
    if folder is not None:
        if conditioning == "tokens":
            raise ConfigError("--conditioning tokens needs a pipeline with EEG tokens (`dreamdiffusion finetune`); an "
                              "aligned encoder predicts a CLIP image embedding only: use --conditioning ip-adapter",
                              folder)
        return ConditioningPlan(folder, ALIGNED_ENCODER, "ip-adapter", conditioning, base or BUILTIN_NAME,
                                ip_adapter or BUILTIN_NAME)
    folder = resolve_pipeline_folder(model)
    saved = read_json_config(folder / "model_index.json").get("conditioning", "tokens")
    if conditioning == "tokens" and saved == "ip-adapter":
        raise ConfigError("--conditioning tokens: this is an ip-adapter pipeline, it has no token conditioner (its EEG "
                          "model predicts a CLIP image embedding); drop the flag or pass a tokens pipeline", folder)
    if conditioning == "ip-adapter" and saved == "tokens":
        return ConditioningPlan(folder, saved, "ip-adapter", conditioning,
                                base or recorded_setting(folder, "base") or BUILTIN_NAME, ip_adapter or BUILTIN_NAME)
    unused = [flag for flag, value in (("--base", base), ("--ip-adapter", ip_adapter)) if value is not None]
    if unused:
        hint = " (add --conditioning ip-adapter to draw its CLIP head through an adapter)" if saved == "tokens" else ""
        raise ConfigError(f"{' and '.join(unused)} {'are' if len(unused) > 1 else 'is'} for an ip-adapter pipeline "
                          f"built on the fly; this {saved} pipeline draws with its own parts{hint}", folder)
    return ConditioningPlan(folder, saved, saved, conditioning)


def build_pipeline(plan: ConditioningPlan, dtype: torch.dtype = torch.float32) -> DreamDiffusionPipeline:
    """The pipeline ``plan`` describes (on the CPU), with its route in ``pipe.conditioning_route`` (what the
    manifests record as ``conditioning``).

    Built on the fly: the aligned encoder's predicted embedding (unit direction x the norm of its CLIP targets), or
    a tokens pipeline's CLIP head rescaled to the norm the adapter was trained on (that head learned a direction
    only: 1 - cosine), goes through the base's UNet with the IP-Adapter loaded by diffusers' ``load_ip_adapter``
    (:meth:`DreamDiffusionPipeline.from_ip_adapter`). No ``generation.json`` rides along: a folder's recommended
    guidance was chosen for the route it was saved with.
    """
    record = {"route": plan.route, "requested": plan.requested, "model_kind": plan.kind, "built": plan.built}
    if not plan.built:
        pipe = DreamDiffusionPipeline.from_pretrained(plan.folder, dtype=dtype)
        pipe.conditioning_route = record
        return pipe
    src = resolve_ip_adapter(plan.ip_adapter)
    if plan.kind == ALIGNED_ENCODER:
        cond, norm, pre, what = _aligned_conditioner(plan)
    else:
        cond, norm, pre, what = _clip_head_conditioner(plan, src)
    clip = recorded_setting(plan.folder, "clip")
    width = int((cond.encoder if isinstance(cond, ImageEmbeddingConditioner) else cond).config.clip_dim)
    _check_width(plan, what, width, adapter_image_embed_dim(src), clip, src)  # before the base is loaded, if it can
    pipe = DreamDiffusionPipeline.from_ip_adapter(cond, plan.base, plan.ip_adapter, image_embed_norm=norm,
                                                  preprocessing=pre)
    _check_width(plan, what, width, pipe.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.in_features,
                 clip, src)
    encoder = _clip_identity(src.image_encoder, src.image_encoder_subfolder)
    if clip is not None and _clip_identity(clip) != encoder:
        logger.warning("%s was trained against the CLIP %s, the IP-Adapter reads embeddings of %s: the images follow "
                       "the EEG only as far as those two spaces agree", what, clip, encoder)
    record.update(base=plan.base, ip_adapter=plan.ip_adapter, image_encoder=encoder, embedding=what,
                  trained_against_clip=clip, image_embed_norm=norm)
    pipe.conditioning_route = record
    return pipe.to(dtype=dtype)


def _aligned_conditioner(plan: ConditioningPlan):
    """An aligned encoder as the EEG model of an ip-adapter pipeline: (conditioner, norm, preprocessing, what)."""
    aligned = load_aligned_encoder(plan.folder)
    try:
        unet = UNet2DConditionModel.load_config(hub.resolve(plan.base, "base"), subfolder="unet")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the base's UNet config: {str(exc).strip().splitlines()[0]} (offline? pass a "
                          "local folder)", plan.base) from None
    cond = ImageEmbeddingConditioner.from_encoder(aligned, int(unet["cross_attention_dim"]))
    dataset = recorded_setting(plan.folder, "dataset")
    return cond, None, {"dataset": dataset} if dataset else {}, "the aligned encoder's predicted embedding"


def _clip_head_conditioner(plan: ConditioningPlan, src: IPAdapterSource):
    """A tokens pipeline's conditioner, read through its CLIP head: (conditioner, norm, preprocessing, what)."""
    check_model_folder(plan.folder)
    check_model_index(read_json_config(plan.folder / "model_index.json"), plan.folder / "model_index.json")
    what = "the CLIP head of this tokens pipeline's conditioner"
    norm = recorded_image_embed_norm(src)
    if norm is None:
        raise ConfigError(f"cannot draw {what} through the IP-Adapter {plan.ip_adapter}: the head learned a direction "
                          "only (1 - cosine), and the adapter records no embedding norm to rescale it to "
                          "(train_image_embed_norm in its quality.json)", plan.folder)
    try:
        cond = EEGConditioner.from_pretrained(plan.folder, subfolder="eeg_conditioner", use_safetensors=True,
                                              low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError, TypeError, AttributeError) as exc:
        raise ConfigError(f"cannot load its EEG conditioner: {str(exc).strip().splitlines()[0]}", plan.folder) from None
    spec = plan.folder / PREPROCESSING_FILE
    return cond.eval(), norm, read_json_config(spec) if spec.is_file() else {}, what


def _check_width(plan: ConditioningPlan, what: str, predicted: int, reads: int | None, clip: str | None,
                 src: IPAdapterSource) -> None:
    if reads is not None and predicted != reads:
        encoder = _clip_identity(src.image_encoder, src.image_encoder_subfolder)
        raise ConfigError(f"cannot draw {what} through the IP-Adapter {plan.ip_adapter}: it predicts {predicted}-wide "
                          f"CLIP image embeddings (of {clip or 'an unrecorded CLIP'}), the adapter reads {reads}-wide "
                          f"ones (of its image encoder {encoder}): align the EEG to that encoder "
                          "(`dreamdiffusion align --clip ...`)", plan.folder)


def _clip_identity(spec: str, subfolder: str | None = None) -> str:
    """A CLIP spec as one comparable name: builtin-tiny and folders as resolved paths, hub ids as given."""
    if spec == BUILTIN_NAME:
        return os.fspath(Path(hub.resolve(spec, "clip")).resolve())
    path = Path(spec).expanduser()
    name = os.fspath(path.resolve()) if path.is_dir() else spec
    return f"{name}/{subfolder}" if subfolder else name


def conditioning_record(pipe) -> dict:
    """How ``pipe`` is conditioned, for a manifest: its route record (:func:`build_pipeline`), else its saved route."""
    record = getattr(pipe, "conditioning_route", None)
    # a pipeline made in Python has no record: its saved route (tokens before the route existed)
    return dict(record) if record else {"route": getattr(getattr(pipe, "config", None), "conditioning", "tokens")}


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
    :func:`~dreamdiffusion.data.transforms.recording_window`, the path the web app and the stream take too."""
    raw = read_raw(path, sfreq=sfreq)
    out = []
    for onset in onsets or [0.0]:
        win = recording_window(raw, onset, spec, source=path)
        out.append(EEGSource(eeg=torch.from_numpy(np.asarray(win, dtype=np.float32)),
                             source={"file": os.fspath(path), "onset_s": float(onset)}))
    return out


def draw_images(pipe, eegs: Sequence[torch.Tensor] | torch.Tensor, num_images: int, steps: int, guidance: float,
                seed: int, batch_size: int | None = None, first_index: int = 0, progress: bool = False,
                callback_on_step_end=None) -> list[list[Image.Image]]:
    """``num_images`` PIL images for each EEG window ``[C, T]``: the one sampler of the project.

    Image ``j`` of EEG ``first_index + i`` starts from its own generator seeded by
    :func:`dreamdiffusion.core.seeding.sample_seed` ``(seed, first_index + i, j)``, so it does not depend on
    the batch it is drawn in: ``generate``, ``evaluate``, val selection, Stage B's validation images, the app
    and ``stream`` give the same image for the same pipeline, EEG, index and seed. ``callback_on_step_end`` goes
    to the pipeline (the app's progress bar).
    """
    eegs = [torch.as_tensor(e, dtype=torch.float32) for e in eegs]
    extra = {} if callback_on_step_end is None else {"callback_on_step_end": callback_on_step_end}
    step = batch_size or max(1, len(eegs))
    out: list[list[Image.Image]] = []
    for b0 in tqdm(range(0, len(eegs), step), desc="generate", unit="batch", disable=not progress):
        chunk = torch.stack(eegs[b0:b0 + step])
        gens = [torch.Generator().manual_seed(sample_seed(seed, first_index + b0 + i, j))
                for i in range(len(chunk)) for j in range(num_images)]
        images = pipe(chunk, num_images_per_eeg=num_images, num_inference_steps=steps, guidance_scale=guidance,
                      generator=gens, output_type="pil", **extra).images
        out += [list(images[i * num_images:(i + 1) * num_images]) for i in range(len(chunk))]
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
    settings = resolve_generation_settings(pipe, config.steps, config.guidance)
    with staged_folder(config.output, config.overwrite) as out:
        manifest = _write_images(config, sources, pipe, settings, out)
    logger.info("wrote %d images for %d EEG windows to %s", len(sources) * config.num_images, len(sources),
                config.output)
    return manifest


def _write_images(config: GenerateConfig, sources: list[EEGSource], pipe, settings: dict, out: Path) -> dict:
    """The images, grid and manifest of :func:`generate_images`, written into the folder ``out``."""
    steps, guidance = settings["steps"], settings["guidance"]
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, entries = [], []
    for b0 in range(0, len(sources), config.batch_size):
        chunk = sources[b0:b0 + config.batch_size]
        for s in chunk:
            pipe.eeg_conditioner.check_eeg(s.eeg[None], s.source.get("file") or s.source.get("dataset"))
        drawn = draw_images(pipe, [s.eeg for s in chunk], config.num_images, steps, guidance, config.seed,
                            first_index=b0)
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
                            "seeds": [sample_seed(config.seed, k, j) for j in range(config.num_images)]})
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


__all__ = [
    "ALIGNED_ENCODER",
    "CONDITIONING_CHOICES",
    "ConditioningPlan",
    "aligned_encoder_folder",
    "build_pipeline",
    "conditioning_record",
    "plan_conditioning",
    "recorded_setting",
    "DEFAULT_GUIDANCE",
    "DEFAULT_STEPS",
    "EEGSource",
    "GenerateConfig",
    "draw_images",
    "generate_images",
    "load_pipeline",
    "resolve_generation_settings",
    "sources_from_dataset",
    "sources_from_file",
]
