"""Reading configs from disk, and the one bounds check every one of them passes before anything is built.

A config file is data someone else may have written: a model folder downloaded from the hub, a
``preprocessing.json`` edited by hand. Every JSON config the project reads (the ``config.json`` of an
EEG encoder or conditioner, the UNet/VAE/scheduler configs, a CLIP or classifier folder's configs,
``model_index.json``, ``preprocessing.json``, ``generation.json``) goes through :func:`read_json_config`
or :func:`check_model_folder` first: a wrong type or an absurd size (``n_chans`` 10^9, a scheduler with
10^10 timesteps) is one ``ConfigError`` naming the file and the field, before any tensor is allocated.
A folder whose config asks for custom code (``auto_map``, ``custom_pipeline``) or that holds pickled
weights only is refused: models load from ``config.json`` + safetensors, and nothing in a model folder runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, TypeVar

from dreamdiffusion.core.errors import ConfigError

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict, what: str) -> T:
    """Build ``cls`` from a JSON dict, refusing keys it does not know (``what`` names them in the error)."""
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {what}: {', '.join(unknown)}")
    return cls(**data)


# ------------------------------------------------------------------------------------ numbers
def check_number(value: Any, name: str, lo: float | None = None, hi: float | None = None, integer: bool = False,
                 path: str | os.PathLike | None = None) -> int | float:
    """``value`` as a finite number in ``[lo, hi]`` (an int when ``integer``), else a ConfigError that says
    the valid range. The CLI's number options and every config field go through this one check."""
    kind = "an integer" if integer else "a number"
    rng = _range_text(lo, hi)
    bad = ConfigError(f"{name} must be {kind}{rng}, got {value!r}", path)
    # numbers.Real / Integral take NumPy's scalars too (an np.int64 count, an np.float32 rate); int/float would not.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad
    if isinstance(value, numbers.Integral):
        value = int(value)
    elif not math.isfinite(value) or (integer and not float(value).is_integer()):
        raise bad
    else:
        value = int(value) if integer else float(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise bad
    return value


def _range_text(lo, hi) -> str:
    fmt = (lambda v: f"{v:g}" if isinstance(v, float) else f"{v:,}".replace(",", "_") if abs(v) >= 10**5 else str(v))
    if lo is not None and hi is not None:
        return f" between {fmt(lo)} and {fmt(hi)}"
    if lo is not None:
        return f" >= {fmt(lo)}"
    return f" <= {fmt(hi)}" if hi is not None else ""


# Bounds of the fields a model folder's configs may hold, by name (the same name means the same thing
# in every file). ("int", lo, hi), ("num", lo, hi), ("ints", lo, hi, max_len): a list of ints, or
# ("int|ints", ...): either. The ranges hold every real model (SD-XL, CLIP ViT-bigG, 128-channel EEG).
MAX_STEPS = 10_000  # sampler steps: generation.json, --steps
MAX_GUIDANCE = 100.0
MAX_CLIP_GUIDANCE_STEPS = 100  # CLIP-guidance moves per sampler step: generation.json, --clip-guidance-steps
FIELD_BOUNDS: dict[str, tuple] = {
    # EEG input and encoder (EEGEncoder, MaskedSignalModel, EEGConditioner, preprocessing.json)
    "n_chans": ("int", 1, 4096), "n_times": ("int", 1, 100_000), "sfreq": ("num", 1e-3, 100_000.0),
    "patch_size": ("int", 1, 100_000), "embed_dim": ("int", 1, 8192), "depth": ("int", 0, 256),
    "num_heads": ("int", 1, 1024), "mlp_ratio": ("num", 0.0, 64.0), "decoder_embed_dim": ("int", 1, 8192),
    "decoder_depth": ("int", 0, 256), "decoder_num_heads": ("int", 1, 1024), "mask_ratio": ("num", 0.0, 1.0),
    "cross_attention_dim": ("int|ints", 1, 16_384, 16), "clip_dim": ("int", 1, 16_384),
    "num_cond_tokens": ("int", 1, 4096), "mid_tokens": ("int", 1, 4096), "time_embed_dim": ("int", 1, 16_384),
    "window_stride": ("int", 1, 100_000), "l_freq": ("num", 0.0, 50_000.0), "h_freq": ("num", 0.0, 50_000.0),
    "notch": ("num", 0.0, 50_000.0), "latent_shape": ("ints", 1, 4096, 4), "latent_bins": ("int", 1, 100_000),
    # diffusers UNet / VAE
    "block_out_channels": ("ints", 1, 8192, 16), "layers_per_block": ("int|ints", 0, 64, 16),
    "sample_size": ("int|ints", 1, 4096, 4), "in_channels": ("int", 1, 1024), "out_channels": ("int", 1, 1024),
    "latent_channels": ("int", 1, 1024), "norm_num_groups": ("int", 1, 1024),
    "attention_head_dim": ("int|ints", 1, 4096, 16), "num_attention_heads": ("int|ints", 1, 4096, 16),
    "transformer_layers_per_block": ("int|ints", 0, 256, 16), "time_embedding_dim": ("int", 1, 16_384),
    "encoder_hid_dim": ("int", 1, 16_384), "projection_class_embeddings_input_dim": ("int", 1, 65_536),
    "num_class_embeds": ("int", 1, 1_000_000), "addition_time_embed_dim": ("int", 1, 16_384),
    "scaling_factor": ("num", 1e-6, 1e6),
    # diffusers schedulers
    "num_train_timesteps": ("int", 1, 100_000), "solver_order": ("int", 1, 16), "steps_offset": ("int", 0, 100_000),
    "beta_start": ("num", 0.0, 1.0), "beta_end": ("num", 0.0, 1.0),
    # generation.json
    "num_inference_steps": ("int", 1, MAX_STEPS), "guidance_scale": ("num", 1.0, MAX_GUIDANCE),
    "clip_guidance": ("num", 0.0, 1.0), "clip_guidance_steps": ("int", 1, MAX_CLIP_GUIDANCE_STEPS),
    "low_level_strength": ("num", 0.0, 1.0),
    # transformers (CLIP vision, image classifiers) and their image processors
    "hidden_size": ("int", 1, 16_384), "intermediate_size": ("int", 1, 131_072), "num_hidden_layers": ("int", 0, 512),
    "projection_dim": ("int", 1, 16_384), "image_size": ("int|ints", 1, 8192, 4), "num_channels": ("int", 1, 64),
    "vocab_size": ("int", 1, 10_000_000), "max_position_embeddings": ("int", 1, 10_000_000),
    "num_labels": ("int", 1, 1_000_000), "shortest_edge": ("int", 1, 8192), "height": ("int", 1, 8192),
    "width": ("int", 1, 8192), "hidden_sizes": ("ints", 1, 16_384, 64), "depths": ("ints", 0, 512, 64),
}
# Beyond the named fields: any other integer or number in a config stays within these, lists are short,
# nesting is shallow, and the file itself is small (a config is read into memory whole).
MAX_ANY_INT = 10_000_000
MAX_ANY_NUMBER = 1e12
MAX_LIST = 100_000
MAX_DEPTH = 8
MAX_CONFIG_BYTES = 16 * 2**20
# Non-finite values some libraries write on purpose (DPM-Solver's lambda_min_clipped = -inf).
NONFINITE_OK = {"lambda_min_clipped"}
# Keys that make transformers/diffusers import code shipped beside the weights.
CODE_KEYS = ("auto_map", "custom_pipeline", "_custom_pipeline")
# A parameter budget for the two model families whose size follows from a few fields (fp32: 4 bytes each).
MAX_PARAMETERS = 4_000_000_000
MAX_POSITION_TABLE = 10_000_000  # tokens x width of an EEG encoder's position table (80 MB as float64)


def check_config_values(data: Any, path: str | os.PathLike | None = None, what: str = "config") -> dict:
    """``data`` (a parsed config) checked against :data:`FIELD_BOUNDS` and the generic limits; returns it.

    Raises one ConfigError naming ``path`` and the field (``unet/config.json: block_out_channels[1] must be
    an integer between 1 and 8192, got 1000000``).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must hold a JSON object, got {_json_type(data)}", path)
    for key in CODE_KEYS:
        if key in data:
            raise ConfigError(f"refused: the config asks to run code shipped with the model ({key}); "
                              "only plain config.json + safetensors folders are loaded", path)
    _walk(data, "", path, 0)
    _check_budget(data, path)
    return data


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), "a number")


def _walk(value: Any, where: str, path, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ConfigError(f"{where or 'config'} is nested too deeply", path)
    if isinstance(value, dict):
        for k, v in value.items():
            key = str(k) if str(k).isprintable() else repr(str(k))  # a key holding a newline stays one line
            name = f"{where}.{key}" if where else key
            if k in FIELD_BOUNDS and v is not None:
                _check_field(k, v, name, path)
            else:
                _walk(v, name, path, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_LIST:
            raise ConfigError(f"{where} is a list of {len(value)} items (at most {MAX_LIST})", path)
        for i, v in enumerate(value):
            _walk(v, f"{where}[{i}]", path, depth + 1)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if abs(value) > MAX_ANY_INT:
            raise ConfigError(f"{where} = {value} is out of range (|value| <= {MAX_ANY_INT:,})".replace(",", "_"), path)
    elif isinstance(value, float):
        leaf = where.rsplit(".", 1)[-1].split("[", 1)[0]
        if not math.isfinite(value) and leaf not in NONFINITE_OK:
            raise ConfigError(f"{where} must be a finite number, got {value!r}", path)
        if math.isfinite(value) and abs(value) > MAX_ANY_NUMBER:
            raise ConfigError(f"{where} = {value!r} is out of range", path)


def _check_field(key: str, value: Any, name: str, path) -> None:
    kind, lo, hi, *rest = FIELD_BOUNDS[key]
    integer = kind != "num"
    if kind in ("ints", "int|ints") and isinstance(value, (list, tuple)):
        max_len = rest[0] if rest else MAX_LIST
        if not 1 <= len(value) <= max_len:
            raise ConfigError(f"{name} must list 1 to {max_len} integers, got {len(value)}", path)
        for i, v in enumerate(value):
            check_number(v, f"{name}[{i}]", lo, hi, integer=True, path=path)
    elif kind == "ints":
        raise ConfigError(f"{name} must be a list of integers, got {_json_type(value)}", path)
    else:
        check_number(value, name, lo, hi, integer=integer, path=path)


def _check_budget(data: dict, path) -> None:
    """Refuse a combination of allowed sizes that still asks for an absurd model (depth x width^2)."""
    width = data.get("embed_dim") or data.get("hidden_size")
    depth = data.get("depth") if "depth" in data else data.get("num_hidden_layers")
    blocks = data.get("block_out_channels")
    params = 0.0
    if isinstance(width, int) and isinstance(depth, int):
        ratio = data.get("mlp_ratio") or (data.get("intermediate_size", 4 * width) / width)
        params += depth * width * width * (4 + 2 * float(ratio))
    if isinstance(blocks, list) and all(isinstance(c, int) for c in blocks):
        per_block = data.get("layers_per_block", 2)
        per_block = max(per_block) if isinstance(per_block, list) and per_block else per_block
        params += sum(c * c for c in blocks) * 40 * (int(per_block) + 1 if isinstance(per_block, int) else 3)
    tokens, patch = data.get("n_times"), data.get("patch_size")
    if isinstance(width, int) and isinstance(tokens, int) and isinstance(patch, int) and patch > 0:
        # EEG models build their sine-cosine position table (tokens x width) for real, even when loading.
        if (tokens // patch) * width > MAX_POSITION_TABLE:
            raise ConfigError(f"n_times / patch_size x embed_dim = {(tokens // patch) * width:,} position values "
                              f"(at most {MAX_POSITION_TABLE:,}): the sizes are corrupt".replace(",", "_"), path)
    if params > MAX_PARAMETERS:
        raise ConfigError(f"the config describes a model of about {params:.2g} parameters (at most "
                          f"{MAX_PARAMETERS:.0e}): the sizes are corrupt", path)


# ------------------------------------------------------------------------------------ files
def read_json_config(path: str | os.PathLike, what: str | None = None, check: bool = True) -> dict:
    """Read a JSON config file (an object), checked by :func:`check_config_values` unless ``check=False``."""
    path = Path(path)
    what = what or path.name
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{what} is {size / 2**20:.0f} MB; a config is at most {MAX_CONFIG_BYTES >> 20} MB",
                              path)
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} not found", path) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text", path) from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{what} is not valid JSON ({str(exc)[:120]})", path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror or exc}", path) from None
    return check_config_values(data, path, what) if check else data


# Weight files that only a pickle loader reads: a folder holding these and no safetensors is refused.
PICKLE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# The components a pipeline's model_index.json may name: (library, class).
ALLOWED_COMPONENTS = {
    ("dreamdiffusion.models.conditioner", "EEGConditioner"),
    ("dreamdiffusion.models.image_conditioner", "ImageEmbeddingConditioner"),  # the modern recipe's
    ("diffusers", "UNet2DConditionModel"), ("diffusers", "AutoencoderKL"),
    *(("diffusers", s) for s in ("DPMSolverMultistepScheduler", "PNDMScheduler", "DDIMScheduler", "DDPMScheduler",
                                 "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "LMSDiscreteScheduler",
                                 "UniPCMultistepScheduler", "HeunDiscreteScheduler", "DPMSolverSinglestepScheduler")),
}


def check_model_index(data: dict, path) -> None:
    """A DreamDiffusion pipeline's ``model_index.json``: every component a known (library, class) pair, so
    that loading imports nothing else (diffusers imports whatever module a component names)."""
    if data.get("_class_name") != "DreamDiffusionPipeline":
        raise ConfigError(f"not a DreamDiffusionPipeline (_class_name {data.get('_class_name')!r})"[:200], path)
    for key, value in data.items():
        if key.startswith("_") or not isinstance(value, list) or value == [None, None]:
            continue  # pipeline settings (conditioning, ip_adapter_scale, ...): bounded by the generic check
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise ConfigError(f"component {key!r} must be [library, class], got {value!r}"[:200], path)
        if tuple(value) not in ALLOWED_COMPONENTS:
            raise ConfigError(f"component {key!r} names {value[0]}.{value[1]}, which is not a known model or "
                              "scheduler class: refused", path)


def check_model_folder(folder: str | os.PathLike) -> Path:
    """Check every JSON config under a model folder (two levels deep) before anything in it is loaded.

    Also refuses a folder whose weights are pickles only (``pytorch_model.bin`` and the like: loading
    them means unpickling) and a folder whose configs ask for custom code. Returns the folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("model folder not found", folder)
    dirs = [folder] + sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for d in dirs:
        names = sorted(p.name for p in d.iterdir() if p.is_file())
        for name in names:
            if name.endswith(".json"):
                read_json_config(d / name, f"{d.name}/{name}" if d != folder else name)
        pickles = [n for n in names if n.endswith(PICKLE_WEIGHTS)]
        if pickles and not any(n.endswith(".safetensors") for n in names):
            raise ConfigError(f"refused: {pickles[0]} is a pickle, and loading a pickle can run code; only "
                              "safetensors weights are loaded (convert it with safetensors' save_file)", d / pickles[0])
    return folder


__all__ = ["dataclass_from_dict", "check_number", "check_config_values", "read_json_config", "check_model_folder",
           "check_model_index", "FIELD_BOUNDS", "MAX_STEPS", "MAX_GUIDANCE", "MAX_CLIP_GUIDANCE_STEPS"]
