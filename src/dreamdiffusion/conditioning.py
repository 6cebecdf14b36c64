"""Which conditioning route a model folder takes, and the pipeline that route builds (``--conditioning``).

A folder is a ``tokens`` pipeline (the paper's: EEG tokens in cross-attention, ``dreamdiffusion finetune``), an
``ip-adapter`` pipeline (the EEG's predicted CLIP image embedding through IP-Adapter, ``demo --recipe modern``), or
an aligned encoder (``dreamdiffusion align``), which an ip-adapter pipeline is built around on the fly. The plan is
decided from the folder's JSON alone (:func:`plan_conditioning`), before anything is loaded, so that a route that
cannot be taken is refused in one line; :func:`build_pipeline` then builds it. ``generate``, ``evaluate``, the app
and ``stream`` all go through here (:func:`dreamdiffusion.generation.load_pipeline`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel

from dreamdiffusion.core.config import check_model_folder, check_model_index, read_json_config
from dreamdiffusion.core.constants import BUILTIN_NAME
from dreamdiffusion.core.errors import ConfigError
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
from dreamdiffusion.pipeline import CONDITIONINGS, PREPROCESSING_FILE, DreamDiffusionPipeline, resolve_pipeline_folder

logger = logging.getLogger(__name__)

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
    return cond, None, aligned_preprocessing(plan.folder), "the aligned encoder's predicted embedding"


def aligned_preprocessing(folder: str | os.PathLike) -> dict:
    """The ``preprocessing.json`` an aligned encoder was saved with (its dataset's input spec: channels, rate,
    channel mapping), for a pipeline built around it; from an older ``align`` run without one, only the dataset."""
    spec = Path(folder) / PREPROCESSING_FILE
    if spec.is_file():
        return read_json_config(spec)
    dataset = recorded_setting(folder, "dataset")
    return {"dataset": dataset} if dataset else {}


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


__all__ = ["ALIGNED_ENCODER", "CONDITIONING_CHOICES", "aligned_preprocessing", "TRAINING_CONFIG_FILES", "ConditioningPlan",
           "aligned_encoder_folder", "build_pipeline", "conditioning_record", "plan_conditioning", "recorded_setting"]
