"""IP-Adapter weights for the image-embedding route: where they live, how a fresh one starts, how one is saved.

The route itself is diffusers' (``IPAdapterMixin.load_ip_adapter`` on the pipeline, which calls
``UNet2DConditionModel._load_ip_adapter_weights``: ``ImageProjection`` as the UNet's ``encoder_hid_proj`` and
``IPAdapterAttnProcessor2_0`` in every cross-attention). This file only reads and writes the checkpoint format
those functions take, the one of ``h94/IP-Adapter``: one safetensors file with ``image_proj.proj.*``,
``image_proj.norm.*`` (a Linear from the CLIP image embedding to 4 tokens, then LayerNorm) and
``ip_adapter.<k>.to_k_ip.weight`` / ``ip_adapter.<k>.to_v_ip.weight`` with ``k = 1, 3, 5, ...`` over the
UNet's cross-attention layers in ``unet.attn_processors`` order.

Sources (``--ip-adapter``):

- ``builtin-tiny``: the adapter that ``scripts/make_builtin.py`` trains for the tiny base on the tiny CLIP's
  image embeddings (``assets/builtin/ip_adapter/``);
- ``h94/IP-Adapter`` (SD 1.5): ``models/ip-adapter_sd15.safetensors``, image encoder ``models/image_encoder``
  (the CLIP the EEG must then be aligned to);
- a local folder laid out like either.

Pure model file: no training loop.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from dreamdiffusion.core.constants import BUILTIN_NAME
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import atomic_write_bytes
from dreamdiffusion.models import builtin

IP_ADAPTER_SUBFOLDER = "ip_adapter"  # where a pipeline folder (and the built-in assets) keep their adapter
IP_ADAPTER_WEIGHT_NAME = "ip-adapter.safetensors"
NUM_IP_TOKENS = 4  # diffusers builds a 4-token ImageProjection for every "proj.weight" checkpoint
H94_REPO = "h94/IP-Adapter"
H94_SD15 = ("models", "ip-adapter_sd15.safetensors", "models/image_encoder")  # subfolder, weight, image encoder


@dataclass
class IPAdapterSource:
    """Arguments of ``pipe.load_ip_adapter`` for one adapter, and the CLIP its image embeddings come from."""

    repo: str  # local folder or hub id
    subfolder: str
    weight_name: str
    image_encoder: str  # folder or hub id of the CLIPVisionModelWithProjection the adapter was trained on
    image_encoder_subfolder: str | None = None


def ip_adapter_root() -> Path:
    """The root holding ``ip_adapter/ip-adapter.safetensors`` for builtin-tiny's base (shipped, else random
    stand-in weights beside builtin's other stand-ins)."""
    if (builtin.ASSETS / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT_NAME).is_file() and builtin.is_trained():
        return builtin.ASSETS
    root = builtin.random_root()
    if not (root / IP_ADAPTER_SUBFOLDER / IP_ADAPTER_WEIGHT_NAME).is_file():  # caches made before the adapter
        from diffusers import UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(root / "base", subfolder="unet")
        state = new_ip_adapter_state_dict(unet, builtin.CLIP_PROJECTION_DIM, torch.Generator().manual_seed(0))
        (root / IP_ADAPTER_SUBFOLDER).mkdir(exist_ok=True)
        save_ip_adapter(state, root / IP_ADAPTER_SUBFOLDER)
    return root


def resolve_ip_adapter(spec: str) -> IPAdapterSource:
    """``builtin-tiny``, ``h94/IP-Adapter`` (SD 1.5), or a folder laid out like either."""
    if spec == BUILTIN_NAME:
        root = ip_adapter_root()
        return IPAdapterSource(os.fspath(root), IP_ADAPTER_SUBFOLDER, IP_ADAPTER_WEIGHT_NAME,
                               os.fspath(builtin.clip_path()))
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / H94_SD15[0] / H94_SD15[1]).is_file():  # a local copy of h94/IP-Adapter
            return IPAdapterSource(os.fspath(path), H94_SD15[0], H94_SD15[1], os.fspath(path / H94_SD15[2]))
        for sub in (IP_ADAPTER_SUBFOLDER, ""):
            if (path / sub / IP_ADAPTER_WEIGHT_NAME).is_file():
                encoder = path / sub / "image_encoder"
                return IPAdapterSource(os.fspath(path), sub, IP_ADAPTER_WEIGHT_NAME,
                                       os.fspath(encoder if encoder.is_dir() else path / "image_encoder"))
        raise ConfigError(f"no IP-Adapter here (expected {H94_SD15[0]}/{H94_SD15[1]} or "
                          f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT_NAME})", path)
    if spec == H94_REPO:
        return IPAdapterSource(H94_REPO, H94_SD15[0], H94_SD15[1], H94_REPO, H94_SD15[2])
    raise ConfigError(f"unknown --ip-adapter: not a folder, {H94_REPO} or {BUILTIN_NAME}", spec)


QUALITY_FILE = "quality.json"  # beside an adapter: its quality check (make_builtin.py writes the built-in one's)


def _local_adapter_folder(src: IPAdapterSource) -> Path | None:
    folder = Path(src.repo, src.subfolder)
    return folder if folder.is_dir() else None


def adapter_image_embed_dim(src: IPAdapterSource) -> int | None:
    """The CLIP image-embedding width the adapter reads (its ``image_proj.proj.weight`` columns), from the
    safetensors header alone; None for an adapter not on disk (a hub id not yet downloaded)."""
    folder = _local_adapter_folder(src)
    if folder is None or not (folder / src.weight_name).is_file():
        return None
    try:
        with safe_open(folder / src.weight_name, "pt") as f:
            return int(f.get_slice("image_proj.proj.weight").get_shape()[1])
    except (OSError, KeyError, ValueError, IndexError, RuntimeError, TypeError) as exc:  # a broken file
        raise ConfigError(f"cannot read the IP-Adapter: {str(exc).strip().splitlines()[0]}",
                          folder / src.weight_name) from None


def recorded_image_embed_norm(src: IPAdapterSource) -> float | None:
    """The mean norm of the CLIP image embeddings the adapter was trained on (``train_image_embed_norm`` in its
    ``quality.json``), or None when it records none (h94's adapters, stand-in weights)."""
    folder = _local_adapter_folder(src)
    path = None if folder is None else folder / QUALITY_FILE
    if path is None or not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get("train_image_embed_norm")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _cross_attention_names(unet) -> list[str]:
    """The UNet's cross-attention processor names in the order diffusers numbers them (``attn2``)."""
    return [name for name in unet.attn_processors if not name.endswith("attn1.processor")
            and "motion_modules" not in name]


def new_ip_adapter_state_dict(unet, image_embed_dim: int, generator: torch.Generator | None = None) -> dict:
    """A fresh adapter for ``unet`` in the format ``load_ip_adapter`` takes (``{"image_proj": .., "ip_adapter": ..}``).

    As the IP-Adapter paper does, each layer's image key/value projections start as copies of its text ones
    (so the image tokens are read like context tokens from step 0); the projection to 4 tokens is random.
    """
    dim = unet.config.cross_attention_dim
    proj = torch.nn.Linear(image_embed_dim, NUM_IP_TOKENS * dim)
    with torch.no_grad():
        proj.weight.copy_(torch.randn(proj.weight.shape, generator=generator) / image_embed_dim ** 0.5)
        proj.bias.zero_()
    image_proj = {"proj.weight": proj.weight.detach(), "proj.bias": proj.bias.detach(),
                  "norm.weight": torch.ones(dim), "norm.bias": torch.zeros(dim)}
    modules = dict(unet.named_modules())
    ip = {}
    for i, name in enumerate(_cross_attention_names(unet)):
        attn = modules[name.rsplit(".processor", 1)[0]]
        ip[f"{2 * i + 1}.to_k_ip.weight"] = attn.to_k.weight.detach().clone()
        ip[f"{2 * i + 1}.to_v_ip.weight"] = attn.to_v.weight.detach().clone()
    return {"image_proj": image_proj, "ip_adapter": ip}


def ip_adapter_state_dict(unet) -> dict:
    """The adapter loaded into ``unet`` (by ``load_ip_adapter``), back in the checkpoint format; one adapter only."""
    proj_layers = getattr(getattr(unet, "encoder_hid_proj", None), "image_projection_layers", None)
    if not proj_layers or len(proj_layers) != 1:
        raise ConfigError("the UNet holds no IP-Adapter (or more than one)")
    layer = proj_layers[0]
    image_proj = {"proj.weight": layer.image_embeds.weight, "proj.bias": layer.image_embeds.bias,
                  "norm.weight": layer.norm.weight, "norm.bias": layer.norm.bias}
    processors = unet.attn_processors
    ip = {}
    for i, name in enumerate(_cross_attention_names(unet)):
        proc = processors[name]
        ip[f"{2 * i + 1}.to_k_ip.weight"] = proc.to_k_ip[0].weight
        ip[f"{2 * i + 1}.to_v_ip.weight"] = proc.to_v_ip[0].weight
    return {k: {n: t.detach().float().cpu().contiguous() for n, t in v.items()}
            for k, v in (("image_proj", image_proj), ("ip_adapter", ip))}


def ip_adapter_parameters(unet) -> list[torch.nn.Parameter]:
    """What training an adapter updates: the image projection and every ``to_k_ip`` / ``to_v_ip``."""
    params = list(unet.encoder_hid_proj.parameters())
    for proc in unet.attn_processors.values():
        if hasattr(proc, "to_k_ip"):
            params += [*proc.to_k_ip.parameters(), *proc.to_v_ip.parameters()]
    return params


def save_ip_adapter(state_dict: dict, folder: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``state_dict`` (the nested format) as ``folder/ip-adapter.safetensors``, atomically."""
    flat = {f"{part}.{name}": t.detach().float().cpu().contiguous()
            for part in ("image_proj", "ip_adapter") for name, t in state_dict[part].items()}
    return atomic_write_bytes(Path(folder) / IP_ADAPTER_WEIGHT_NAME,
                              save(flat, metadata={k: str(v) for k, v in (metadata or {}).items()}))


__all__ = ["IPAdapterSource", "resolve_ip_adapter", "adapter_image_embed_dim", "recorded_image_embed_norm", "new_ip_adapter_state_dict", "ip_adapter_state_dict",
           "ip_adapter_parameters", "save_ip_adapter", "IP_ADAPTER_SUBFOLDER", "IP_ADAPTER_WEIGHT_NAME",
           "NUM_IP_TOKENS", "H94_REPO"]
