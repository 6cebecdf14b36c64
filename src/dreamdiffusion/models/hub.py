"""Resolve ``--base`` / ``--clip``: a local folder, a Hugging Face hub id, or ``builtin-tiny``.

All three go through the same ``from_pretrained`` calls: ``builtin-tiny`` is only a name for a
local folder laid out like a Stable Diffusion repository (``unet/``, ``vae/``, ``scheduler/``)
or a CLIP vision repository, built by :mod:`dreamdiffusion.models.builtin`.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from dreamdiffusion.core.config import check_model_folder
from dreamdiffusion.core.constants import BUILTIN_NAME
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.data.images import clip_pixel_values
from dreamdiffusion.models.builtin import CLASS_EMBEDDINGS_FILE, class_embeddings

logger = logging.getLogger(__name__)

# owner/name with the characters the hub allows; anything else that is not a folder is an error.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, ImportError,
                pickle.UnpicklingError)


@dataclass
class BaseModel:
    unet: "torch.nn.Module"
    vae: "torch.nn.Module"
    scheduler_config: dict  # the base's scheduler config (noise schedule)
    source: str  # what the user passed
    path: str  # the folder or hub id it resolved to


@dataclass
class ClipModel:
    model: "torch.nn.Module"  # CLIPVisionModelWithProjection
    processor: object  # its image processor
    source: str
    path: str


def resolve(spec: str, kind: str) -> str:
    """``spec`` -> a local folder or a hub id. ``kind`` is ``"base"`` or ``"clip"``."""
    if not spec:
        raise ConfigError(f"no --{kind} model given (a local folder, a hub id, or {BUILTIN_NAME})")
    if spec == BUILTIN_NAME:
        try:
            from dreamdiffusion.models import builtin
        except ImportError as exc:
            raise ConfigError(f"{BUILTIN_NAME} is not available in this installation ({exc})", spec) from exc
        return os.fspath(builtin.base_path() if kind == "base" else builtin.clip_path())
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"--{kind} must be a model folder, not a file", path)
        return os.fspath(path)
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return spec
    raise ConfigError(
        f"unknown --{kind} model: no such folder, and not a hub id like owner/name (or use {BUILTIN_NAME})", spec)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# Every transformers/diffusers load: safetensors only, never code shipped beside the weights.
SAFE_LOAD = {"use_safetensors": True, "trust_remote_code": False}


def checked(where: str) -> str:
    """Check the configs of the model at ``where`` (a folder, or a hub id's cached JSON files) before loading.

    A hub id's configs are fetched first (``*.json`` only) so that they pass the same check as a folder;
    when that fails (offline, unknown id) the load itself reports the problem.
    """
    if Path(where).is_dir():
        check_model_folder(where)
        return where
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(where, allow_patterns=["*.json", "*/*.json"])
    except Exception:  # offline or unknown: from_pretrained below says so in one line
        return where
    check_model_folder(local)
    return where


def load_base(spec: str, torch_dtype: torch.dtype | None = None) -> BaseModel:
    """UNet, VAE and the scheduler config of a Stable Diffusion repository."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    where = resolve(spec, "base")
    kwargs = dict(SAFE_LOAD) if torch_dtype is None else {**SAFE_LOAD, "dtype": torch_dtype}
    checked(where)
    try:
        unet = UNet2DConditionModel.from_pretrained(where, subfolder="unet", **kwargs)
        vae = AutoencoderKL.from_pretrained(where, subfolder="vae", **kwargs)
        scheduler_config = dict(DDPMScheduler.load_config(where, subfolder="scheduler", trust_remote_code=False))
    except LOAD_ERRORS as exc:
        raise ConfigError(
            f"cannot load a Stable Diffusion model (unet/, vae/, scheduler/) from here: {_first_line(exc)} "
            "(offline? set HF_HUB_OFFLINE=0 or pass a local folder)", spec) from exc
    if getattr(unet.config, "cross_attention_dim", None) is None:
        raise ConfigError("the base UNet has no cross-attention; DreamDiffusion needs a text-to-image UNet", spec)
    return BaseModel(unet=unet, vae=vae, scheduler_config=scheduler_config, source=spec, path=where)


def load_clip(spec: str) -> ClipModel:
    """A CLIP vision tower with its projection, and its image processor."""
    from transformers import AutoImageProcessor, CLIPVisionModelWithProjection

    where = resolve(spec, "clip")
    checked(where)
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(where, **SAFE_LOAD)
    except LOAD_ERRORS as exc:
        raise ConfigError(
            f"cannot load a CLIP vision model + image processor from here: {_first_line(exc)} "
            "(offline? pass a local folder)", spec) from exc
    try:
        processor = AutoImageProcessor.from_pretrained(where, trust_remote_code=False)
    except LOAD_ERRORS:
        # IP-Adapter image encoders (h94/IP-Adapter's models/image_encoder) ship no preprocessor config;
        # diffusers' load_ip_adapter then builds CLIP's default processor at the model's size: so do we.
        from transformers import CLIPImageProcessor

        size = int(model.config.image_size)
        processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        logger.info("%s has no image processor config: CLIP's default at %d px", where, size)
    return ClipModel(model=model, processor=processor, source=spec, path=where)


@torch.no_grad()
def clip_image_embeds(images, clip_model, clip_processor, normalize: bool = False,
                      batch_size: int | None = None) -> torch.Tensor:
    """CLIP ``image_embeds`` ``[N, P]`` (float32, on the model's device) of PIL images; frozen, no grad.

    The one place the project embeds images with CLIP: Stage B's targets and warm-up, val selection and
    evaluate's retrieval all call it. Each image goes through CLIP's own processor (never augmented), in
    the model's dtype. ``normalize`` returns unit-length rows (cosine similarity is then a matrix product);
    ``batch_size`` None embeds all images in one forward pass.
    """
    images = list(images)
    step = batch_size or max(1, len(images))
    device, dtype = clip_model.device, clip_model.dtype
    out = []
    for i in range(0, len(images), step):
        px = clip_pixel_values(images[i:i + step], clip_processor).to(device, dtype)
        embeds = clip_model(pixel_values=px).image_embeds.float()
        out.append(F.normalize(embeds, dim=-1) if normalize else embeds)
    return torch.cat(out)


def empty_prompt_context(where: str) -> torch.Tensor:
    """The base's context for "no prompt", ``[77, cross_attention_dim]``: what the IP-Adapter route conditions on.

    ``builtin-tiny`` (and any base with ``class_embeddings.safetensors``): its learned null sequence. A Stable
    Diffusion repository: its text encoder's output for the empty prompt, as diffusers encodes ``""``.
    """
    if Path(where, CLASS_EMBEDDINGS_FILE).is_file():
        return class_embeddings(where)[1]
    return prompt_contexts(where, [""])[0]


def load_text_encoder(where: str):
    """``(tokenizer, text encoder)`` of a Stable Diffusion repository (safe loading only)."""
    checked(where)
    from transformers import CLIPTextModel, CLIPTokenizer

    try:
        tokenizer = CLIPTokenizer.from_pretrained(where, subfolder="tokenizer", trust_remote_code=False)
        text_encoder = CLIPTextModel.from_pretrained(where, subfolder="text_encoder", **SAFE_LOAD)
    except LOAD_ERRORS as exc:
        raise ConfigError(f"cannot load the base's text encoder: {_first_line(exc)}", where) from exc
    return tokenizer, text_encoder


def prompt_contexts(where: str, prompts: list[str], loaded=None) -> torch.Tensor:
    """A Stable Diffusion repository's text-encoder output for each prompt, ``[len(prompts), 77, D]``
    (``loaded``: the ``(tokenizer, text encoder)`` pair of :func:`load_text_encoder`, so a caller asking often loads
    it once)."""
    tokenizer, model = loaded or load_text_encoder(where)
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).last_hidden_state


def class_conditioning(base: str) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """``(class embeddings [K, L, D], null [L, D], class names)`` of a class-conditional base, else None.

    A base is class-conditional here when its folder holds ``class_embeddings.safetensors`` (as ``builtin-tiny``);
    a text-to-image base (Stable Diffusion) has a text encoder instead.
    """
    try:
        folder = Path(resolve(base, "base"))
    except Exception:  # an unknown spec: the callers report what they skip, never fail for it
        return None
    path = folder / CLASS_EMBEDDINGS_FILE
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        names = json.loads((f.metadata() or {}).get("class_names", "null"))
    embeds, null = class_embeddings(folder)
    return embeds, null, [str(n) for n in (names or range(len(embeds)))]


def unet_time_embed_dim(unet) -> int:
    """Width of the UNet's timestep embedding (``block_out_channels[0] * 4`` for SD)."""
    return int(unet.time_embedding.linear_2.out_features)


def clip_projection_dim(clip_model) -> int:
    return int(clip_model.config.projection_dim)


__all__ = ["BUILTIN_NAME", "BaseModel", "ClipModel", "resolve", "load_base", "load_clip",
           "unet_time_embed_dim", "clip_projection_dim", "clip_image_embeds", "empty_prompt_context",
           "prompt_contexts", "load_text_encoder", "class_conditioning"]
