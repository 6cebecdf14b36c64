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

import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dreamdiffusion.core.config import dataclass_from_dict
from dreamdiffusion.core.constants import PAPER_SFREQ
from dreamdiffusion.core.errors import ConfigError, DataError, TrainingError
from dreamdiffusion.core.seeding import step_seed

logger = logging.getLogger(__name__)

TRAIN_MODES = ("paper", "lora", "encoder")
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "finetune_config.json"
PIPELINE_DIR = "pipeline"
BEST_FILE = "best_trainable.safetensors"
# --select-metric -> (the validation record's key, whether higher is better)
SELECT_METRICS = {"loss": ("val_loss", False), "mse": ("val_mse", False), "gen_clip": ("val_gen_clip_2way", True)}


@dataclass
class FinetuneConfig:
    """Every Stage B hyper-parameter in one place (paper defaults unless noted)."""

    output: str = "runs/finetune"  # output folder: pipeline/, checkpoints/, metrics.jsonl, loss.png
    dataset: str = "folder"  # paired dataset name (eegcvpr40, things-eeg2, folder, synthetic)
    dataset_options: dict = field(default_factory=dict)  # passed to open_paired_dataset (paths, subject, ...)
    encoder: str | None = None  # pretrained EEG encoder folder; None = random init (no-pretraining ablation)
    encoder_preset: str = "paper"  # architecture when encoder is None
    base: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # SD folder, hub id or builtin-tiny
    clip: str = "openai/clip-vit-large-patch14"  # CLIP vision folder, hub id or builtin-tiny
    train: str = "paper"  # paper | lora | encoder
    clip_weight: float = 1.0  # weight of 1 - cos(CLIP head, CLIP image embedding)
    cond_dropout: float = 0.1  # share of samples trained on the null-EEG context (enables guidance)
    time_conditioning: bool = True  # add pooled EEG context to the timestep embedding (paper)
    # Which training timesteps are drawn (diffusers' SDXL scripts' --timestep_bias_strategy): none (uniform, as
    # the paper), later (the noisiest `timestep_bias_portion` of the schedule drawn `timestep_bias_multiplier`
    # times as often: where the image's layout, i.e. what the EEG decides, is formed) or earlier (the least noisy).
    # Validation always draws uniformly, so val losses stay comparable.
    timestep_bias: str = "none"
    timestep_bias_multiplier: float = 2.0
    timestep_bias_portion: float = 0.25
    resolution: int | None = None  # image size; None = the base's native size (SD 1.5: 512)
    crop_ratio: float = 0.2  # random crop of (1 - ratio) of the side, resized back (paper)
    crop_prob: float = 0.5  # probability of that crop per training image (paper)
    batch_size: int = 25  # per process
    learning_rate: float = 5.3e-5  # constant (paper)
    lr_scheduler: str = "constant"  # any diffusers get_scheduler name
    lr_warmup_steps: int = 0
    # Encoder lr (None: learning_rate). Small noisy EEG sets: a lower encoder lr than the UNet's keeps
    # the joint loss from overwriting the CLIP alignment with memorised train trials.
    encoder_learning_rate: float | None = None
    # UNet lr (attn2/norm2 or LoRA; None: learning_rate). The mappers, CLIP head, time conditioning and null
    # context start from random weights and keep learning_rate; the UNet's cross-attention starts trained.
    unet_learning_rate: float | None = None
    # CLIP-alignment warm-up: steps of encoder + CLIP head alone on 1 - cos(head, CLIP image_embeds),
    # before the diffusion loss starts (0 = off). The step with the best val cosine is kept.
    clip_warmup_steps: int = 0
    clip_warmup_learning_rate: float | None = None  # None: learning_rate
    weight_decay: float = 0.01  # AdamW default, as the reference
    max_grad_norm: float = 0.5  # gradient clipping (paper: 0.5)
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"  # no | fp16 | bf16
    max_steps: int | None = None  # optimizer steps; overrides epochs
    epochs: int = 500  # paper config
    lora_rank: int = 4
    lora_alpha: int = 4
    seed: int = 2022
    checkpoint_every: int = 500  # optimizer steps between resumable checkpoints (0 = only at the end)
    checkpoints_total_limit: int | None = 3
    resume: bool = False  # continue from the latest complete checkpoint in output/checkpoints
    validate_every: int = 500  # optimizer steps between validations on the val split (0 = only at the end)
    val_limit: int | None = 100  # val pairs used for val loss / cosine (None = all)
    validation_images: int = 4  # val EEGs drawn at each validation (0 = none)
    validation_inference_steps: int = 25
    guidance_scale: float = 3.0  # for validation images
    select: str = "best"  # best (on --select-metric) | last: which weights become the final pipeline
    # What "best" means: loss (val eps-MSE + clip_weight x CLIP loss, lower is better), mse (the diffusion
    # term alone) or gen_clip (val EEGs -> generated images -> CLIP image embeddings; the share of 2-way
    # identifications against the val ground truths that are right, higher is better). gen_clip judges the
    # images the model makes, which the losses do not: on the digits benchmark the val loss bottomed out at
    # step 100 of 400 while the generated images kept getting better. It costs a sampling run per validation
    # (select_images EEGs x validation_inference_steps, guidance_scale).
    select_metric: str = "loss"
    select_images: int = 64  # val EEGs generated for gen_clip (the first ones of the val split)
    skip_nonfinite: bool = False  # skip a batch with a NaN/Inf loss instead of stopping
    num_workers: int = 0  # data-loading workers
    record_pairs: bool = False  # write seen_pairs/rank-<r>.json: the image names each process trained on (tests)

    def validate(self) -> None:
        if self.train not in TRAIN_MODES:
            raise ConfigError(f"--train must be one of {', '.join(TRAIN_MODES)}, got {self.train!r}")
        if self.select not in ("best", "last"):
            raise ConfigError(f"--select must be best or last, got {self.select!r}")
        if self.timestep_bias not in ("none", "later", "earlier"):
            raise ConfigError(f"--timestep-bias must be none, later or earlier, got {self.timestep_bias!r}")
        if not 0.0 < self.timestep_bias_portion <= 1.0 or self.timestep_bias_multiplier <= 0:
            raise ConfigError("--timestep-bias-portion must be in (0, 1] and --timestep-bias-multiplier positive")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(f"--select-metric must be one of {', '.join(SELECT_METRICS)}, got {self.select_metric!r}")
        if self.select_metric == "gen_clip" and self.select_images < 2:
            raise ConfigError(f"--select-images must be at least 2 for gen_clip, got {self.select_images}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"--mixed-precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ConfigError(f"--cond-dropout must be in [0, 1), got {self.cond_dropout}")
        for name in ("batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.clip_warmup_steps < 0:
            raise ConfigError(f"--clip-warmup-steps must be >= 0, got {self.clip_warmup_steps}")
        for name in ("encoder_learning_rate", "unet_learning_rate", "clip_warmup_learning_rate"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("--max-steps must be at least 1")
        if self.max_steps is None and self.epochs < 1:
            raise ConfigError("--epochs must be at least 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FinetuneConfig":
        return dataclass_from_dict(cls, data, "finetune settings")


# ------------------------------------------------------------------------------------- models

class TrainableSystem(nn.Module):
    """Conditioner + UNet in one module so Accelerate wraps (and DDP syncs) one thing."""

    def __init__(self, conditioner, unet):
        super().__init__()
        self.conditioner = conditioner
        self.unet = unet

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


# --------------------------------------------------------------------------------------- data

def open_datasets(cfg: FinetuneConfig):
    """(train, val or None) paired datasets; the test split is never opened here."""
    try:
        from dreamdiffusion.data.pairs import open_paired_dataset
    except ImportError as exc:  # pragma: no cover - the pairs module ships with the package
        raise ConfigError(f"paired datasets are unavailable: {exc}") from exc
    train = open_paired_dataset(cfg.dataset, "train", **cfg.dataset_options)
    try:
        val = open_paired_dataset(cfg.dataset, "val", **cfg.dataset_options)
    except DataError as exc:
        logger.warning("no val split (%s): validation and best-checkpoint selection are off", exc)
        val = None
    return train, val


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


class MicroBatches(torch.utils.data.Sampler):
    """Index lists of this rank's micro-batches from micro-batch ``start`` on.

    Epoch ``e`` shuffles all pairs with a generator seeded by ``(seed, e)``; each global batch
    of ``batch_size * world`` pairs is cut into ``world`` slices, one per rank (ranks see
    different pairs); the incomplete tail of an epoch is dropped so all ranks step together.
    """

    def __init__(self, n: int, batch_size: int, world: int, rank: int, seed: int, start: int, total: int):
        self.n, self.batch_size, self.world, self.rank, self.seed = n, batch_size, world, rank, seed
        self.per_epoch = n // (batch_size * world)
        self.start, self.total = start, total

    def __len__(self):
        return max(0, self.total - self.start)

    def __iter__(self):
        perm, perm_epoch = None, -1
        for m in range(self.start, self.total):
            epoch, within = divmod(m, self.per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(step_seed(self.seed, epoch, 99991)))
                perm_epoch = epoch
            g0 = within * self.batch_size * self.world + self.rank * self.batch_size
            yield perm[g0:g0 + self.batch_size].tolist()


def _collate(items: list) -> list:
    return items


def _check_item(item: Any, index: int) -> None:
    if not isinstance(item, dict) or "eeg" not in item or "image" not in item:
        raise DataError(f"dataset item {index} is not a dict with 'eeg' and 'image'")


# ------------------------------------------------------------------------------------ training

@dataclass
class _Parts:
    conditioner: Any
    unet: Any
    vae: Any
    clip: Any
    clip_processor: Any
    noise_scheduler: Any
    scheduler_config: dict
    resolution: int


def build_parts(cfg: FinetuneConfig, n_chans: int, n_times: int, sfreq: float | None) -> _Parts:
    from diffusers import DDPMScheduler

    from dreamdiffusion.models import hub
    from dreamdiffusion.models.conditioner import EEGConditioner, load_encoder

    base = hub.load_base(cfg.base)
    clip = hub.load_clip(cfg.clip)
    cross = int(base.unet.config.cross_attention_dim)
    clip_dim = hub.clip_projection_dim(clip.model)
    time_dim = hub.unet_time_embed_dim(base.unet) if cfg.time_conditioning else None
    if cfg.encoder and cfg.encoder.lower() != "none":
        encoder = load_encoder(cfg.encoder)
        found = (encoder.config.n_chans, encoder.config.n_times)
        if found != (n_chans, n_times):
            raise ConfigError(
                f"the encoder expects EEG of {found[0]} channels x {found[1]} samples but the dataset gives "
                f"{n_chans} x {n_times} (prepare the pairs with the encoder's input: --channel-mapping / resampling, "
                f"or pretrain an encoder for this montage)", cfg.encoder)
        conditioner = EEGConditioner.from_encoder(encoder, cross, clip_dim, time_dim)
    else:
        conditioner = EEGConditioner.from_preset(cfg.encoder_preset, n_chans=n_chans, n_times=n_times,
                                                 sfreq=sfreq or PAPER_SFREQ, cross_attention_dim=cross,
                                                 clip_dim=clip_dim, time_embed_dim=time_dim)
    # Training noise: the base's schedule, epsilon prediction (as SD 1.x was trained).
    sched_cfg = {k: v for k, v in base.scheduler_config.items() if not k.startswith("_")}
    noise_scheduler = DDPMScheduler.from_config({**sched_cfg, "prediction_type": "epsilon"})
    vae_factor = 2 ** (len(base.vae.config.block_out_channels) - 1)
    sample = base.unet.config.sample_size
    sample = sample[0] if isinstance(sample, (list, tuple)) else sample
    resolution = cfg.resolution or sample * vae_factor
    if resolution % vae_factor:
        raise ConfigError(f"--resolution {resolution} is not a multiple of the VAE's factor {vae_factor}")
    return _Parts(conditioner, base.unet, base.vae, clip.model, clip.processor, noise_scheduler,
                  dict(base.scheduler_config), resolution)


def _cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(pred.float(), target.float(), dim=-1).mean()


class _Trainer:
    def __init__(self, cfg: FinetuneConfig, train_ds, val_ds):
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.cfg = cfg
        self.out = Path(cfg.output)
        self.train_ds, self.val_ds = train_ds, val_ds
        # `accelerate launch --num_processes N` on a machine without a GPU: Accelerate only picks its
        # CPU backend (gloo) when asked for the CPU.
        cpu = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()
        try:
            self.acc = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cpu,
                                   kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)])
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot set up training: {exc}") from exc
        self.rank, self.world = self.acc.process_index, self.acc.num_processes
        self._select = None  # (val items, their CLIP truths) of --select-metric gen_clip, made once

    # -- setup
    def setup(self):
        cfg, acc = self.cfg, self.acc
        if len(self.train_ds) == 0:
            raise DataError("the train split is empty", cfg.dataset)
        first = self.train_ds[0]
        _check_item(first, 0)
        eeg = torch.as_tensor(first["eeg"])
        if eeg.ndim != 2:
            raise DataError(f"dataset EEG items must be [channels, samples], got shape {tuple(eeg.shape)}", cfg.dataset)
        sfreq = getattr(getattr(self.train_ds, "spec", None), "sfreq", None)
        p = build_parts(cfg, int(eeg.shape[0]), int(eeg.shape[1]), sfreq)
        self.parts = p
        from dreamdiffusion.data.images import ImageTransform

        # Paper preprocessing: resize; in training a random crop-and-resize. The generator is set per
        # batch (batch_tensors), so each step's augmentation is reproducible.
        self.train_transform = ImageTransform(p.resolution, train=True, crop_ratio=cfg.crop_ratio, crop_p=cfg.crop_prob)
        self.eval_transform = ImageTransform(p.resolution, train=False)
        configure_trainable(p.conditioner, p.unet, p.vae, p.clip, cfg)
        if cfg.gradient_checkpointing:
            p.unet.enable_gradient_checkpointing()
            p.conditioner.enable_gradient_checkpointing()
        # Frozen parts run in the mixed-precision dtype; trained weights stay fp32 (master copy).
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision, torch.float32)
        for frozen in (p.vae, p.clip):
            frozen.to(acc.device)
            if self.weight_dtype != torch.float32:
                frozen.to(dtype=self.weight_dtype)
        if self.weight_dtype != torch.float32:
            # The frozen UNet weights (most of SD's 860M) in the half dtype halve their memory; the
            # trained ones (attn2/norm2 or LoRA) stay fp32 and autocast mixes the two.
            for prm in p.unet.parameters():
                prm.data = prm.data.to(torch.float32 if prm.requires_grad else self.weight_dtype)
            for buf_name, buf in p.unet.named_buffers():
                if buf.is_floating_point():
                    buf.data = buf.data.to(self.weight_dtype)
        self.system = TrainableSystem(p.conditioner, p.unet)
        # Before `prepare`: every process runs the same seeded warm-up, and DDP starts from rank 0's weights.
        self.warmup_summary = self.clip_warmup() if cfg.clip_warmup_steps and not cfg.resume else None
        params = [q for q in self.system.parameters() if q.requires_grad]
        self.n_trainable = sum(q.numel() for q in params)
        encoder_ids = {id(q) for q in p.conditioner.encoder.parameters()}
        unet_ids = {id(q) for q in p.unet.parameters()}
        groups = [{"params": [q for q in params if id(q) not in encoder_ids | unet_ids]},
                  {"params": [q for q in params if id(q) in encoder_ids],
                   "lr": cfg.encoder_learning_rate or cfg.learning_rate},
                  {"params": [q for q in params if id(q) in unet_ids],
                   "lr": cfg.unet_learning_rate or cfg.learning_rate}]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.learning_rate,
                                      weight_decay=cfg.weight_decay)
        from diffusers.optimization import get_scheduler

        lr_sched = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps * self.world,
                                 num_training_steps=10**9)
        self.system, self.optimizer, self.lr_sched = acc.prepare(self.system, optimizer, lr_sched)

        self.per_epoch = len(self.train_ds) // (cfg.batch_size * self.world)
        if self.per_epoch == 0:
            raise DataError(f"the train split has {len(self.train_ds)} pairs, fewer than one batch of "
                            f"{cfg.batch_size} x {self.world} process(es) (lower --batch-size)", cfg.dataset)
        steps_per_epoch = max(1, self.per_epoch // cfg.gradient_accumulation_steps)
        self.max_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
        logger.info("finetune: %d train pairs, %s val pairs, %d steps (%d per epoch), %d trainable parameters (%s)",
                    len(self.train_ds), len(self.val_ds) if self.val_ds is not None else "no", self.max_steps,
                    steps_per_epoch, self.n_trainable, cfg.train)

    # -- CLIP-alignment warm-up
    @torch.no_grad()
    def _clip_targets(self, items: list) -> torch.Tensor:
        from dreamdiffusion.data.images import clip_pixel_values

        p = self.parts
        px = clip_pixel_values([it["image"] for it in items], p.clip_processor).to(self.acc.device, self.weight_dtype)
        return p.clip(pixel_values=px).image_embeds.float()

    def clip_warmup(self) -> dict:
        """Train the encoder + CLIP head alone on the CLIP loss; keep the step with the best val cosine.

        Why: the diffusion loss gives the encoder a weak, noisy signal, and on a small set of noisy
        single trials the encoder learns to tell the train trials apart instead of what they show.
        The CLIP loss alone is cheap (no VAE, no UNet), so many more encoder steps fit the budget, and
        the val split decides how many of them to keep.
        """
        cfg, dev = self.cfg, self.acc.device
        cond = self.parts.conditioner
        cond.to(dev)
        params = [q for n, q in cond.named_parameters() if n.split(".")[0] in ("encoder", "clip_pool", "clip_proj")]
        opt = torch.optim.AdamW(params, lr=cfg.clip_warmup_learning_rate or cfg.learning_rate,
                                weight_decay=cfg.weight_decay)
        steps = cfg.clip_warmup_steps
        if len(self.train_ds) < cfg.batch_size:
            raise DataError(f"the train split has {len(self.train_ds)} pairs, fewer than one batch of "
                            f"{cfg.batch_size} (lower --batch-size)", cfg.dataset)
        every = max(1, steps // 20)
        val = None
        if self.val_ds is not None and len(self.val_ds):
            n = len(self.val_ds) if cfg.val_limit is None else min(cfg.val_limit, len(self.val_ds))
            items = [self.val_ds[i] for i in range(n)]
            val = (torch.stack([torch.as_tensor(it["eeg"], dtype=torch.float32) for it in items]).to(dev),
                   self._clip_targets(items))

        def val_cos() -> float:
            cond.eval()
            with torch.no_grad():
                pred = torch.cat([cond(val[0][i:i + cfg.batch_size]).clip_embeds
                                  for i in range(0, len(val[0]), cfg.batch_size)])
            cond.train()
            return float(F.cosine_similarity(pred.float(), val[1], dim=-1).mean())

        # Its own data order (seed + 1): the diffusion phase's order stays what it is without a warm-up.
        sampler = MicroBatches(len(self.train_ds), cfg.batch_size, 1, 0, cfg.seed + 1, 0, steps)
        best = {"step": 0, "val_clip_cos": val_cos() if val is not None else None}
        best_state = {n: q.detach().clone() for n, q in cond.named_parameters()}
        records = []
        cond.train()
        for step, idx in enumerate(sampler, start=1):
            items = [self.train_ds[i] for i in idx]
            eeg = torch.stack([torch.as_tensor(it["eeg"], dtype=torch.float32) for it in items]).to(dev)
            loss = _cosine_loss(cond(eeg).clip_embeds, self._clip_targets(items))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm and cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
            if val is not None and (step % every == 0 or step == steps):
                record = {"step": step, "clip_loss": float(loss.detach()), "val_clip_cos": val_cos()}
                records.append(record)
                if record["val_clip_cos"] > best["val_clip_cos"]:
                    best = {"step": step, "val_clip_cos": record["val_clip_cos"]}
                    best_state = {n: q.detach().clone() for n, q in cond.named_parameters()}
        if val is None:  # nothing to choose with: keep the last step
            best = {"step": steps, "val_clip_cos": None}
        else:
            with torch.no_grad():
                for n, q in cond.named_parameters():
                    q.copy_(best_state[n])
        opt.zero_grad(set_to_none=True)
        logger.info("CLIP warm-up: %d steps, kept step %d (val CLIP cosine %s)", steps, best["step"],
                    best["val_clip_cos"])
        if self.acc.is_main_process:
            from dreamdiffusion.training.checkpoint import atomic_write_json

            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out / "clip_warmup.json", {"steps": steps, "best": best, "records": records})
        return best

    # -- one batch
    def batch_tensors(self, items: list, train: bool, gen: torch.Generator):
        from dreamdiffusion.data.images import clip_pixel_values

        p, dev = self.parts, self.acc.device
        eeg = torch.stack([torch.as_tensor(it["eeg"], dtype=torch.float32) for it in items]).to(dev)
        transform = self.train_transform if train else self.eval_transform
        transform.generator = gen
        pixels = torch.stack([transform(it["image"]) for it in items]).to(dev, self.weight_dtype)
        with torch.no_grad():
            # Frozen targets, computed once per batch, outside any graph.
            posterior = p.vae.encode(pixels).latent_dist
            eps = torch.randn(posterior.mean.shape, generator=gen).to(dev, posterior.mean.dtype)
            latents = (posterior.mean + posterior.std * eps) * p.vae.config.scaling_factor
            clip_px = clip_pixel_values([it["image"] for it in items], p.clip_processor).to(dev, self.weight_dtype)
            image_embeds = p.clip(pixel_values=clip_px).image_embeds.float()
        b = eeg.shape[0]
        noise = torch.randn(latents.shape, generator=gen).to(dev, latents.dtype)
        t = sample_timesteps(b, p.noise_scheduler.config.num_train_timesteps, gen,
                             self.cfg.timestep_bias if train else "none", self.cfg.timestep_bias_multiplier,
                             self.cfg.timestep_bias_portion).to(dev)
        drop = (torch.rand(b, generator=gen) < (self.cfg.cond_dropout if train else 0.0)).to(dev)
        noisy = p.noise_scheduler.add_noise(latents, noise, t)
        return eeg, noisy, noise, t, drop, image_embeds

    def losses(self, model, batch):
        eeg, noisy, noise, t, drop, image_embeds = batch
        with self.acc.autocast():
            eps_pred, clip_pred = model(eeg, noisy, t, drop)
        mse = F.mse_loss(eps_pred.float(), noise.float())
        clip_loss = _cosine_loss(clip_pred, image_embeds)
        return mse + self.cfg.clip_weight * clip_loss, mse, clip_loss

    # -- validation (main process only)
    @torch.no_grad()
    def validate(self, step: int) -> dict | None:
        if self.val_ds is None or len(self.val_ds) == 0:
            return None
        cfg = self.cfg
        model = self.acc.unwrap_model(self.system)
        model.eval()
        n = len(self.val_ds) if cfg.val_limit is None else min(cfg.val_limit, len(self.val_ds))
        tot = {"val_loss": 0.0, "val_mse": 0.0, "val_clip_cos": 0.0}
        for i0 in range(0, n, cfg.batch_size):
            items = [self.val_ds[i] for i in range(i0, min(n, i0 + cfg.batch_size))]
            gen = torch.Generator().manual_seed(step_seed(cfg.seed, i0, 7))  # same noise at every validation
            loss, mse, clip_loss = self.losses(model, self.batch_tensors(items, False, gen))
            for k, v in (("val_loss", loss), ("val_mse", mse), ("val_clip_cos", 1.0 - clip_loss)):
                tot[k] += float(v) * len(items)
        result = {k: v / n for k, v in tot.items()}
        if cfg.select_metric == "gen_clip":
            result.update(self.generated_clip_scores(model))
        model.train()
        if cfg.validation_images > 0:
            self.validation_images(step, model)
        return result

    def generated_clip_scores(self, model) -> dict:
        """``val_gen_clip_2way`` / ``val_gen_clip_cos`` of the first ``select_images`` val EEGs (see
        :func:`dreamdiffusion.evaluation.selection.generated_clip_scores`); same sampling noise every time."""
        from dreamdiffusion.evaluation.selection import clip_truths, distinct_image_items, generated_clip_scores

        cfg, p = self.cfg, self.parts
        if self._select is None:  # one trial of each of the first select_images val images, and their CLIP truths
            items = distinct_image_items(self.val_ds, cfg.select_images)
            self._select = (items, clip_truths(items, p.clip, p.clip_processor))
        items, truths = self._select
        pipe = self.make_pipeline(model)
        pipe.set_progress_bar_config(disable=True)
        return generated_clip_scores(pipe, items, p.clip, p.clip_processor, cfg.validation_inference_steps,
                                     cfg.guidance_scale, cfg.seed, cfg.batch_size, autocast=self.acc.autocast,
                                     truths=truths)

    def _final_unet_vae(self, model):
        """The UNet (LoRA fused) and VAE to save, in fp32.

        Frozen weights that were cast to a half dtype for training are reloaded from the base at full
        precision rather than saved rounded; trained weights are fp32 master copies already.
        """
        from dreamdiffusion.models import hub

        unet, vae = model.unet, self.parts.vae
        if self.weight_dtype != torch.float32:
            fresh = hub.load_base(self.cfg.base)
            vae = fresh.vae
            if self.cfg.train == "encoder":
                unet = fresh.unet
            elif self.cfg.train == "paper":  # trained fp32 master weights into a full-precision copy
                trained = {n: q.detach().float() for n, q in unet.named_parameters() if q.requires_grad}
                missing = set(trained) - set(dict(fresh.unet.named_parameters()))
                if missing:
                    raise TrainingError(f"trained UNet weights not found in the base: {sorted(missing)[:3]}")
                fresh.unet.load_state_dict(trained, strict=False)
                unet = fresh.unet
            elif self.cfg.train == "lora":
                from peft import get_peft_model_state_dict, set_peft_model_state_dict

                adapter = get_peft_model_state_dict(unet)
                fresh.unet.add_adapter(unet.peft_config["default"])
                set_peft_model_state_dict(fresh.unet, {k: v.float() for k, v in adapter.items()})
                unet = fresh.unet
        if self.cfg.train == "lora":
            unet.fuse_lora()
            unet.unload_lora()
        return _as_fp32(unet), _as_fp32(vae)

    def make_pipeline(self, model, scheduler_name: str = "dpm", unet=None, vae=None):
        from dreamdiffusion.pipeline import DreamDiffusionPipeline, make_scheduler

        sched = make_scheduler(scheduler_name, self.parts.scheduler_config)
        spec = getattr(self.train_ds, "spec", None)  # the pairs' InputSpec: how raw EEG became the input
        pre = dict(spec.to_dict()) if hasattr(spec, "to_dict") else {}
        pre["dataset"] = self.cfg.dataset
        return DreamDiffusionPipeline(unet=model.unet if unet is None else unet,
                                      vae=self.parts.vae if vae is None else vae, scheduler=sched,
                                      eeg_conditioner=model.conditioner, preprocessing=pre)

    def validation_images(self, step: int, model) -> None:
        from dreamdiffusion.training.checkpoint import atomic_write_bytes

        cfg = self.cfg
        k = min(cfg.validation_images, len(self.val_ds))
        items = [self.val_ds[i] for i in range(k)]
        pipe = self.make_pipeline(model)
        pipe.set_progress_bar_config(disable=True)
        eeg = torch.stack([torch.as_tensor(it["eeg"], dtype=torch.float32) for it in items])
        with self.acc.autocast():  # the UNet may hold half-precision frozen and fp32 trained weights
            images = pipe(eeg, num_images_per_eeg=1, num_inference_steps=cfg.validation_inference_steps,
                          guidance_scale=cfg.guidance_scale, generator=torch.Generator().manual_seed(cfg.seed),
                          output_type="pil").images
        truth = [it["image"].convert("RGB").resize(images[0].size) for it in items]
        grid = image_grid([truth, images])
        import io

        buf = io.BytesIO()
        grid.save(buf, format="PNG")
        atomic_write_bytes(self.out / "validation" / f"step-{step:07d}.png", buf.getvalue())

    # -- main loop
    def run(self) -> Path:
        from safetensors.torch import load_file

        from dreamdiffusion.training.checkpoint import CheckpointManager, atomic_write_json

        cfg, acc = self.cfg, self.acc
        manager = CheckpointManager(self.out, cfg.checkpoints_total_limit)
        start, best = 0, None
        if not cfg.resume and (manager.latest() is not None or (self.out / PIPELINE_DIR / "model_index.json").exists()):
            raise ConfigError("this output folder holds an earlier run; pass --resume to continue it, "
                              "or choose another --output", self.out)
        if cfg.resume:
            latest = manager.latest()
            if latest is None:
                logger.warning("--resume: no complete checkpoint in %s; starting from step 0", manager.root)
            else:
                state = manager.load(acc, latest)
                start = int(state["step"])
                best = state.get("extra", {}).get("best")
                logger.info("resumed from %s (step %d)", latest, start)
        if acc.is_main_process:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out / CONFIG_FILE, {**cfg.to_dict(), "resolved": {
                "resolution": self.parts.resolution, "max_steps": self.max_steps, "num_processes": self.world,
                "trainable_parameters": self.n_trainable}})
            self._trim_metrics(start)

        k = cfg.gradient_accumulation_steps
        sampler = MicroBatches(len(self.train_ds), cfg.batch_size, self.world, self.rank, cfg.seed,
                               start * k, self.max_steps * k)
        loader = torch.utils.data.DataLoader(self.train_ds, batch_sampler=sampler, collate_fn=_collate,
                                             num_workers=cfg.num_workers)
        batches = iter(loader)
        self.system.train()
        last_ckpt = manager.latest()
        from tqdm.auto import tqdm

        seen: dict[int, list[str]] = {}
        bar = tqdm(range(start, self.max_steps), initial=start, total=self.max_steps, desc="finetune",
                   disable=not acc.is_local_main_process)
        for step in bar:
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(step_seed(cfg.seed, step, self.rank))
            logs = {"loss": 0.0, "mse": 0.0, "clip_loss": 0.0}
            skipped = False
            for j in range(k):
                items = next(batches)
                if cfg.record_pairs:
                    seen.setdefault(step, []).extend(str(it.get("image_name")) for it in items)
                batch = self.batch_tensors(items, True, gen)
                sync = j == k - 1
                ctx = acc.no_sync(self.system) if not sync else _nullcontext()
                with ctx:
                    loss, mse, clip_loss = self.losses(self.system, batch)
                    all_loss = acc.gather(loss.detach()[None])
                    if not torch.isfinite(all_loss).all():
                        if cfg.skip_nonfinite:
                            logger.warning("step %d: non-finite loss, batch skipped", step)
                            skipped = True
                            break
                        raise TrainingError(
                            f"the loss became {float(loss.detach())} at step {step}; stopped. The last good checkpoint is "
                            f"{last_ckpt or 'none'} (lower --learning-rate, use --mixed-precision bf16 or no, or "
                            "pass --skip-nonfinite)", self.out)
                    acc.backward(loss / k)
                for key, v in (("loss", loss), ("mse", mse), ("clip_loss", clip_loss)):
                    logs[key] += float(v.detach()) / k
            if not skipped:
                if cfg.max_grad_norm and cfg.max_grad_norm > 0:
                    acc.clip_grad_norm_([q for q in self.system.parameters() if q.requires_grad], cfg.max_grad_norm)
                self.optimizer.step()
                self.lr_sched.step()
            self.optimizer.zero_grad(set_to_none=True)
            done = step + 1
            record = {"step": done, **{key: float(acc.reduce(torch.tensor(v, device=acc.device), "mean"))
                                       for key, v in logs.items()},
                      "lr": self.lr_sched.get_last_lr()[0], "seconds": time.perf_counter() - t0}
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            if acc.is_main_process:
                if (cfg.validate_every and done % cfg.validate_every == 0) or done == self.max_steps:
                    val = self.validate(done)
                    if val is not None:
                        record.update(val)
                        if _improves(val, best, cfg.select_metric):
                            key = SELECT_METRICS[cfg.select_metric][0]
                            best = {"step": done, "val_loss": val["val_loss"], "metric": key, "value": val[key]}
                            self._save_best(done)
                self._append_metrics(record)
            acc.wait_for_everyone()
            best = _broadcast(best)
            if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == self.max_steps:
                last_ckpt = manager.save(acc, done, {"best": best}, epoch=(done * k) // self.per_epoch)

        if cfg.record_pairs:
            atomic_write_json(self.out / "seen_pairs" / f"rank-{self.rank}.json", {"steps": seen})
        # ---- final model
        model = acc.unwrap_model(self.system)
        if cfg.select == "best" and best is not None and (self.out / BEST_FILE).is_file():
            state = load_file(str(self.out / BEST_FILE))
            missing = set(state) - set(dict(model.named_parameters()))
            if missing:
                raise TrainingError(f"best weights do not fit the model ({sorted(missing)[:3]})", self.out / BEST_FILE)
            with torch.no_grad():
                params = dict(model.named_parameters())
                for name, value in state.items():
                    params[name].copy_(value)
            logger.info("final model: best on val (step %d, %s %.5f)", best["step"], best.get("metric", "val_loss"),
                        best.get("value", best["val_loss"]))
        else:
            if cfg.select == "best":
                logger.warning("no validation ran: the final model is the last step")
        final = self.out / PIPELINE_DIR
        if acc.is_main_process:
            from dreamdiffusion.training.checkpoint import atomic_save_pretrained

            unet, vae = self._final_unet_vae(model)
            pipe = self.make_pipeline(model, unet=unet, vae=vae)
            atomic_save_pretrained(pipe, final)
            atomic_write_json(self.out / "final.json", {"select": cfg.select, "best": best,
                                                         "pipeline": PIPELINE_DIR, "steps": self.max_steps})
            plot_metrics(self.out / METRICS_FILE, self.out / "loss.png")
            logger.info("wrote %s", final)
        acc.wait_for_everyone()
        acc.end_training()
        return final

    def _save_best(self, step: int) -> None:
        from safetensors.torch import save_file

        model = self.acc.unwrap_model(self.system)
        state = {n: q.detach().to("cpu", torch.float32).contiguous() for n, q in model.named_parameters()
                 if q.requires_grad}
        tmp = self.out / f".{BEST_FILE}.tmp"
        save_file(state, str(tmp), metadata={"step": str(step)})
        os.replace(tmp, self.out / BEST_FILE)

    def _trim_metrics(self, start: int) -> None:
        """On resume, drop records from steps after the checkpoint (they will be redone)."""
        from dreamdiffusion.training.checkpoint import atomic_write_text

        path = self.out / METRICS_FILE
        if not path.exists():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)["step"] <= start:
                    keep.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        atomic_write_text(path, "".join(s + "\n" for s in keep))

    def _append_metrics(self, record: dict) -> None:
        with open(self.out / METRICS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()


def _improves(val: dict, best: dict | None, select_metric: str) -> bool:
    """Whether validation record ``val`` beats ``best`` on ``select_metric``."""
    key, higher = SELECT_METRICS[select_metric]
    if best is None:
        return True
    old = best.get("value", best.get("val_loss")) if best.get("metric", "val_loss") == key else None
    if old is None:  # a resumed run whose best was chosen on another metric: the new metric starts over
        return True
    return val[key] > old if higher else val[key] < old


def _as_fp32(module):
    # `.to(float32)` on a model that is already fp32 only prints a diffusers warning.
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in module.state_dict().values()):
        module.to(torch.float32)
    return module


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _broadcast(obj):
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj])[0]


def image_grid(rows: list[list], size: tuple[int, int] | None = None) -> "Image.Image":
    """Paste rows of PIL images into one image, each resized to ``size`` (default: the first row's last image)."""
    from PIL import Image

    w, h = size or rows[0][-1].size
    cols = max(len(r) for r in rows)
    grid = Image.new("RGB", (cols * w, len(rows) * h), "white")
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            grid.paste(im.convert("RGB").resize((w, h)), (j * w, i * h))
    return grid


def plot_metrics(metrics_file: Path, figure: Path) -> None:
    """Train loss per step and val loss per validation, atomically written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(s) for s in Path(metrics_file).read_text().splitlines() if s.strip()] if Path(metrics_file).exists() else []
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="train loss", lw=1)
    val = [r for r in rows if "val_loss" in r]
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="val loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("eps MSE + clip_weight x (1 - cos)")
    ax.legend()
    fig.tight_layout()
    tmp = figure.with_name(f".{figure.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, figure)


def finetune(config: FinetuneConfig, train_dataset=None, val_dataset=None) -> Path:
    """Run Stage B; return the folder of the final :class:`DreamDiffusionPipeline`.

    ``train_dataset`` / ``val_dataset`` (items: dicts with ``eeg`` [C, T] and ``image`` PIL) replace
    ``config.dataset`` when given (the demo and tests pass in-memory datasets).
    """
    config.validate()
    if train_dataset is None:
        train_dataset, opened_val = open_datasets(config)
        val_dataset = opened_val if val_dataset is None else val_dataset
    random.seed(config.seed)
    torch.manual_seed(config.seed)  # only affects freshly initialised layers (mappers, null context)
    trainer = _Trainer(config, train_dataset, val_dataset)
    trainer.setup()
    return trainer.run()


__all__ = ["FinetuneConfig", "finetune", "TRAIN_MODES", "paper_unet_parameters", "configure_trainable",
           "MicroBatches", "step_seed", "image_grid", "plot_metrics", "TrainableSystem"]
