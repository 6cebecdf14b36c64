"""Stage B building blocks: the trained module, what trains, the models it starts from, timesteps and losses.

:class:`dreamdiffusion.training.finetune_trainer.Trainer` runs the loop; everything here is a plain function
of its arguments, so it can be read (and tested) without Accelerate.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dreamdiffusion.core.constants import PAPER_SFREQ
from dreamdiffusion.core.errors import ConfigError, DataError, TrainingError
from dreamdiffusion.data.pairs import keep_fraction_of_images, open_paired_dataset
from dreamdiffusion.data.pairs.subset import item_keys
from dreamdiffusion.models import hub
from dreamdiffusion.models.conditioner import EEGConditioner, load_encoder
from dreamdiffusion.models.encoders import AlignedEncoder
from dreamdiffusion.training.contrastive import info_nce
from dreamdiffusion.training.finetune_config import SELECT_METRICS, FinetuneConfig

logger = logging.getLogger(__name__)


class TrainableSystem(nn.Module):
    """Conditioner + UNet in one module so Accelerate wraps (and DDP syncs) one thing."""

    def __init__(self, conditioner, unet, contrastive: bool = False, init_logit_scale: float = math.log(1 / 0.07)):
        super().__init__()
        self.conditioner = conditioner
        self.unet = unet
        # --align contrastive: InfoNCE's learnable inverse temperature (log-parametrised, CLIP's 0.07 to start).
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale))) if contrastive else None

    def forward(self, eeg, noisy_latents, timesteps, drop):
        out = self.conditioner(eeg)
        cond = self.conditioner.drop_condition(out.cond, drop)  # [B, 77, Dx]
        with self.conditioner.conditioning(self.unet, cond):
            eps = self.unet(noisy_latents, timesteps, encoder_hidden_states=cond.to(self.unet.dtype)).sample
        return eps, out.clip_embeds


def paper_unet_parameters(unet) -> list[tuple[str, nn.Parameter]]:
    """Every cross-attention (``attn2``) and the LayerNorm before it (``norm2``) of the UNet's transformer blocks."""
    from diffusers.models.attention import BasicTransformerBlock

    chosen = []
    for block_name, block in unet.named_modules():
        if isinstance(block, BasicTransformerBlock) and getattr(block, "attn2", None) is not None:
            for sub in ("attn2", "norm2"):
                module = getattr(block, sub, None)
                if module is not None:
                    chosen += [(f"{block_name}.{sub}.{n}", p) for n, p in module.named_parameters()]
    return chosen


def configure_trainable(conditioner, unet, vae, clip_model, cfg: FinetuneConfig) -> None:
    """Set ``requires_grad`` for the chosen ``--train`` mode; VAE and CLIP always frozen."""
    for frozen in (vae, clip_model):
        frozen.requires_grad_(False)
        frozen.eval()
    conditioner.requires_grad_(True)
    unet.requires_grad_(False)
    if cfg.train == "paper":
        params = paper_unet_parameters(unet)
        if not params:
            raise ConfigError("the base UNet has no cross-attention transformer blocks to train (--train paper)")
        for _, p in params:
            p.requires_grad_(True)
    elif cfg.train == "lora":
        from peft import LoraConfig

        unet.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, init_lora_weights="gaussian",
                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))


def param_groups(params: list, conditioner, unet, cfg: FinetuneConfig) -> list[dict]:
    """AdamW groups: new layers at ``learning_rate``, the encoder and the UNet at their own rates when given."""
    encoder_ids = {id(q) for q in conditioner.encoder.parameters()}
    unet_ids = {id(q) for q in unet.parameters()}
    groups = [{"params": [q for q in params if id(q) not in encoder_ids | unet_ids]},
              {"params": [q for q in params if id(q) in encoder_ids],
               "lr": cfg.encoder_learning_rate or cfg.learning_rate},
              {"params": [q for q in params if id(q) in unet_ids],
               "lr": cfg.unet_learning_rate or cfg.learning_rate}]
    return [g for g in groups if g["params"]]


# --------------------------------------------------------------------------------------- data

def open_datasets(cfg: FinetuneConfig):
    """(train, val or None) paired datasets; the test split is never opened here. ``cfg.train_fraction`` < 1 keeps
    that share of the train images (:func:`dreamdiffusion.data.pairs.keep_fraction_of_images`)."""
    train = keep_fraction_of_images(open_paired_dataset(cfg.dataset, "train", **cfg.dataset_options),
                                    cfg.train_fraction, cfg.seed)
    try:
        val = open_paired_dataset(cfg.dataset, "val", **cfg.dataset_options)
    except DataError as exc:
        logger.warning("no val split (%s): validation and best-checkpoint selection are off", exc)
        val = None
    return train, val


def check_item(item: Any, index: int) -> None:
    if not isinstance(item, dict) or "eeg" not in item or "image" not in item:
        raise DataError(f"dataset item {index} is not a dict with 'eeg' and 'image'")


def collate(items: list) -> list:
    return items


def stack_eeg(items: list) -> torch.Tensor:
    """``[B, C, T]`` float32 EEG of dataset items."""
    return torch.stack([torch.as_tensor(it["eeg"], dtype=torch.float32) for it in items])


def timestep_weights(num_train_timesteps: int, bias: str = "none", multiplier: float = 2.0,
                     portion: float = 0.25) -> torch.Tensor:
    """Relative probability of each training timestep: 1, and ``multiplier`` on the biased ``portion``."""
    weights = torch.ones(num_train_timesteps)
    n = max(1, int(round(portion * num_train_timesteps)))
    if bias == "later":
        weights[-n:] = multiplier
    elif bias == "earlier":
        weights[:n] = multiplier
    return weights


def sample_timesteps(batch: int, num_train_timesteps: int, gen: torch.Generator, bias: str = "none",
                     multiplier: float = 2.0, portion: float = 0.25) -> torch.Tensor:
    """``batch`` training timesteps: uniform (the paper) or biased as :func:`timestep_weights` says."""
    if bias == "none":
        return torch.randint(0, num_train_timesteps, (batch,), generator=gen)
    weights = timestep_weights(num_train_timesteps, bias, multiplier, portion)
    return torch.multinomial(weights, batch, replacement=True, generator=gen)


def cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - cos`` averaged over the batch (the paper's CLIP-alignment loss)."""
    return 1.0 - F.cosine_similarity(pred.float(), target.float(), dim=-1).mean()


def image_ids(items: list) -> torch.Tensor:
    """One integer per item, equal for items of one image (``image_name``): repeated trials in a batch."""
    index: dict = {}
    return torch.tensor([index.setdefault(it.get("image_name", i), len(index)) for i, it in enumerate(items)])


def alignment_loss(align: str, pred: torch.Tensor, target: torch.Tensor, logit_scale: torch.Tensor | None = None,
                   ids: torch.Tensor | None = None, cosine_weight: float = 0.0) -> torch.Tensor:
    """The CLIP head's loss: ``cosine`` (1 - cos, the paper's) or ``contrastive`` (InfoNCE at ``exp(logit_scale)``,
    plus ``cosine_weight`` x (1 - cos), as ``dreamdiffusion align --cosine-weight``)."""
    if align == "cosine":
        return cosine_loss(pred, target)
    if logit_scale is None:
        raise ValueError("contrastive alignment needs a logit scale")
    return info_nce(pred, target, logit_scale.exp().clamp(max=100.0), ids, cosine_weight)


# ------------------------------------------------------------------------------------ models

@dataclass
class StageBParts:
    """What Stage B starts from: the new conditioner and the pretrained UNet, VAE, CLIP and noise schedule."""

    conditioner: Any
    unet: Any
    vae: Any
    clip: Any
    clip_processor: Any
    noise_scheduler: Any
    scheduler_config: dict
    resolution: int


class FrozenTargets:
    """Stage B's frozen targets, each computed once per image: CLIP image embeddings and VAE posteriors.

    CLIP is frozen and its input (CLIP's own processor on the image, never augmented) is the same at every step,
    so each image's embedding is too; the VAE is frozen, so the posterior (mean, std) of an image that the step's
    augmentation left alone is the same at every step (the latent is still drawn from it with the step's own
    noise). Both were recomputed for every batch. :meth:`prepare` computes them for every named image of the
    splits up front (datasets with ``image_keys()``), in fixed batches in dataset order, so a run and a resumed run hold the same bits; whatever is
    not prepared (items without ``image_name``, augmented images, posteriors past ``max_bytes``: Stable
    Diffusion's latents of a large dataset would not fit in memory) is computed with its batch, as before.
    """

    def __init__(self, clip, clip_processor, vae, max_bytes: int = 512 * 2**20):
        self.clip, self.clip_processor, self.vae = clip, clip_processor, vae
        self.max_bytes = int(max_bytes)
        self._embeds: dict = {}
        self._posteriors: dict = {}
        self._bytes = 0

    @torch.no_grad()
    def prepare(self, datasets, transform, device, dtype, batch_size: int = 64) -> int:
        """Embed (and encode, un-augmented, by ``transform``) every distinct named image of ``datasets`` once;
        returns how many. Only datasets that list their images without reading every item (``image_keys()``: the
        built-in benchmark) are prepared; the targets of the others are computed with each batch, as before."""
        first: dict = {}
        for ds in datasets:
            for i, (key, _) in enumerate(item_keys(ds) if hasattr(ds, "image_keys") else []):
                if isinstance(key, str) and key not in first:
                    first[key] = (ds, i)
        names = list(first)
        for b in range(0, len(names), batch_size):
            chunk = names[b:b + batch_size]
            images = [ds[i]["image"] for ds, i in (first[k] for k in chunk)]
            self._embeds.update(zip(chunk, hub.clip_image_embeds(images, self.clip, self.clip_processor)))
            if self.vae is not None and self._bytes < self.max_bytes:
                dist = self.vae.encode(torch.stack([transform(im) for im in images]).to(device, dtype)).latent_dist
                for j, k in enumerate(chunk):
                    self._posteriors[k] = (dist.mean[j], dist.std[j])
                self._bytes += 2 * dist.mean.numel() * dist.mean.element_size()
        return len(names)

    def clip_embeds(self, items: list) -> torch.Tensor:
        """CLIP ``image_embeds [B, P]`` of the items' images (:func:`dreamdiffusion.models.hub.clip_image_embeds`)."""
        keys = [it.get("image_name") for it in items]
        todo = [i for i, k in enumerate(keys) if k not in self._embeds]
        fresh = dict(zip(todo, hub.clip_image_embeds([items[i]["image"] for i in todo], self.clip,
                                                     self.clip_processor))) if todo else {}
        return torch.stack([fresh[i] if i in fresh else self._embeds[k] for i, k in enumerate(keys)])

    @torch.no_grad()
    def posterior(self, items: list, pixels: torch.Tensor, augmented: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)`` of the VAE posterior of ``pixels [B, 3, H, W]`` (item i's image, augmented or not)."""
        keys = [None if aug else it.get("image_name") for it, aug in zip(items, augmented)]
        todo = [i for i, k in enumerate(keys) if k is None or k not in self._posteriors]
        fresh = {}
        if todo:
            dist = self.vae.encode(pixels[todo]).latent_dist
            fresh = {i: (dist.mean[j], dist.std[j]) for j, i in enumerate(todo)}
        pairs = [fresh[i] if i in fresh else self._posteriors[k] for i, k in enumerate(keys)]
        return torch.stack([m for m, _ in pairs]), torch.stack([s for _, s in pairs])


def build_conditioner(cfg: FinetuneConfig, n_chans: int, n_times: int, sfreq: float | None, cross: int,
                      clip_dim: int, time_dim: int | None) -> EEGConditioner:
    """The pretrained encoder at ``cfg.encoder`` (``pretrain``'s transformer or ``align``'s encoder of any
    architecture), or a fresh ``encoder_arch`` (msm: of ``encoder_preset``), with new mappers and CLIP head."""
    head = {"clip_pool_tokens": cfg.clip_pool_tokens, "clip_context": cfg.clip_context}
    if cfg.encoder and cfg.encoder.lower() != "none":
        encoder = load_encoder(cfg.encoder, aligned=True)
        aligned = isinstance(encoder, AlignedEncoder)
        arch = encoder.config.arch if aligned else "msm"
        if cfg.encoder_arch and cfg.encoder_arch != arch:
            raise ConfigError(f"--encoder-arch {cfg.encoder_arch} but this folder holds a {arch!r} encoder "
                              "(leave --encoder-arch out to take the folder's)", cfg.encoder)
        found = ((encoder.config.in_chans, encoder.config.in_times) if aligned
                 else (encoder.config.n_chans, encoder.config.n_times))
        if found != (n_chans, n_times):
            raise ConfigError(
                f"the encoder expects EEG of {found[0]} channels x {found[1]} samples but the dataset gives "
                f"{n_chans} x {n_times} (prepare the pairs with the encoder's input: --channel-mapping / resampling, "
                f"or pretrain an encoder for this montage)", cfg.encoder)
        if aligned:
            return EEGConditioner.from_aligned(encoder, cross, clip_dim, time_dim, **head)
        norm = None if cfg.encoder_norm == "pretrained" else cfg.encoder_norm
        return EEGConditioner.from_encoder(encoder, cross, clip_dim, time_dim, final_norm=norm, **head)
    sfreq = sfreq or PAPER_SFREQ
    if (cfg.encoder_arch or "msm") != "msm":
        return EEGConditioner.from_arch(cfg.encoder_arch, n_chans, n_times, sfreq, cross, clip_dim, time_dim, **head)
    return EEGConditioner.from_preset(cfg.encoder_preset, n_chans=n_chans, n_times=n_times, sfreq=sfreq,
                                      cross_attention_dim=cross, clip_dim=clip_dim, time_embed_dim=time_dim, **head)


def build_parts(cfg: FinetuneConfig, n_chans: int, n_times: int, sfreq: float | None) -> StageBParts:
    from diffusers import DDPMScheduler

    base = hub.load_base(cfg.base)
    clip = hub.load_clip(cfg.clip)
    time_dim = hub.unet_time_embed_dim(base.unet) if cfg.time_conditioning else None
    conditioner = build_conditioner(cfg, n_chans, n_times, sfreq, int(base.unet.config.cross_attention_dim),
                                    hub.clip_projection_dim(clip.model), time_dim)
    # Training noise: the base's schedule, epsilon prediction (as SD 1.x was trained).
    sched_cfg = {k: v for k, v in base.scheduler_config.items() if not k.startswith("_")}
    noise_scheduler = DDPMScheduler.from_config({**sched_cfg, "prediction_type": "epsilon"})
    vae_factor = 2 ** (len(base.vae.config.block_out_channels) - 1)
    sample = base.unet.config.sample_size
    sample = sample[0] if isinstance(sample, (list, tuple)) else sample
    resolution = cfg.resolution or sample * vae_factor
    if resolution % vae_factor:
        raise ConfigError(f"--resolution {resolution} is not a multiple of the VAE's factor {vae_factor}")
    return StageBParts(conditioner, base.unet, base.vae, clip.model, clip.processor, noise_scheduler,
                       dict(base.scheduler_config), resolution)


def cast_frozen(parts: StageBParts, device, weight_dtype: torch.dtype) -> None:
    """Frozen parts to ``device`` in the mixed-precision dtype; trained weights stay fp32 (master copy)."""
    for frozen in (parts.vae, parts.clip):
        frozen.to(device)
        if weight_dtype != torch.float32:
            frozen.to(dtype=weight_dtype)
    if weight_dtype != torch.float32:
        # The frozen UNet weights (most of SD's 860M) in the half dtype halve their memory; the
        # trained ones (attn2/norm2 or LoRA) stay fp32 and autocast mixes the two.
        for prm in parts.unet.parameters():
            prm.data = prm.data.to(torch.float32 if prm.requires_grad else weight_dtype)
        for _name, buf in parts.unet.named_buffers():
            if buf.is_floating_point():
                buf.data = buf.data.to(weight_dtype)


def final_unet_vae(cfg: FinetuneConfig, unet, vae, weight_dtype: torch.dtype):
    """The UNet (LoRA fused) and VAE to save, in fp32.

    Frozen weights that were cast to a half dtype for training are reloaded from the base at full
    precision rather than saved rounded; trained weights are fp32 master copies already.
    """
    if weight_dtype != torch.float32:
        fresh = hub.load_base(cfg.base)
        vae = fresh.vae
        if cfg.train == "encoder":
            unet = fresh.unet
        elif cfg.train == "paper":  # trained fp32 master weights into a full-precision copy
            trained = {n: q.detach().float() for n, q in unet.named_parameters() if q.requires_grad}
            missing = set(trained) - set(dict(fresh.unet.named_parameters()))
            if missing:
                raise TrainingError(f"trained UNet weights not found in the base: {sorted(missing)[:3]}")
            fresh.unet.load_state_dict(trained, strict=False)
            unet = fresh.unet
        elif cfg.train == "lora":
            from peft import get_peft_model_state_dict, set_peft_model_state_dict

            adapter = get_peft_model_state_dict(unet)
            fresh.unet.add_adapter(unet.peft_config["default"])
            set_peft_model_state_dict(fresh.unet, {k: v.float() for k, v in adapter.items()})
            unet = fresh.unet
    if cfg.train == "lora":
        unet.fuse_lora()
        unet.unload_lora()
    return as_fp32(unet), as_fp32(vae)


def as_fp32(module):
    # `.to(float32)` on a model that is already fp32 only prints a diffusers warning.
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in module.state_dict().values()):
        module.to(torch.float32)
    return module


def improves(val: dict, best: dict | None, select_metric: str) -> bool:
    """Whether validation record ``val`` beats ``best`` on ``select_metric``."""
    key, higher = SELECT_METRICS[select_metric]
    if best is None:
        return True
    old = best.get("value", best.get("val_loss")) if best.get("metric", "val_loss") == key else None
    if old is None:  # a resumed run whose best was chosen on another metric: the new metric starts over
        return True
    return val[key] > old if higher else val[key] < old


__all__ = ["FrozenTargets", "TrainableSystem", "paper_unet_parameters", "configure_trainable", "param_groups",
           "open_datasets", "timestep_weights", "sample_timesteps", "cosine_loss", "alignment_loss", "image_ids",
           "StageBParts", "build_parts", "build_conditioner",
           "final_unet_vae", "improves"]
