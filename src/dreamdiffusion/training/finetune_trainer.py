"""The Stage B loop on Accelerate: setup, one optimizer step, validation, best-step keeping, the final pipeline.

The objective, what trains and the determinism rules are in :mod:`dreamdiffusion.training.finetune`; the
building blocks (models, timesteps, losses) in :mod:`dreamdiffusion.training.stageb`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from tqdm.auto import tqdm

from dreamdiffusion.core.errors import ConfigError, DataError, TrainingError
from dreamdiffusion.core.files import atomic_save_pretrained, atomic_write_bytes, atomic_write_json, atomic_write_png
from dreamdiffusion.core.seeding import step_seed
from dreamdiffusion.data.images import ImageTransform, image_grid
from dreamdiffusion.data.transforms import preprocessing_record
from dreamdiffusion.evaluation.selection import clip_truths, distinct_image_items, generated_clip_scores
from dreamdiffusion.generation import draw_images
from dreamdiffusion.models.conditioner import filters_head
from dreamdiffusion.pipeline import DreamDiffusionPipeline, make_scheduler
from dreamdiffusion.training.captions import base_null_context
from dreamdiffusion.training.checkpoint import CheckpointManager
from dreamdiffusion.training.class_context import CLASS_CONTEXT_FILE, fit_class_context
from dreamdiffusion.training.clip_head_refit import refit_clip_head, refit_state
from dreamdiffusion.training.clip_warmup import clip_warmup
from dreamdiffusion.training.finetune_config import (
    BEST_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    PIPELINE_DIR,
    SELECT_METRICS,
    FinetuneConfig,
)
from dreamdiffusion.training.loop import JsonlLog, StepBatchSampler, read_jsonl
from dreamdiffusion.training.plots import plot_loss_curves
from dreamdiffusion.training.stageb import (
    FrozenTargets,
    TrainableSystem,
    alignment_loss,
    build_parts,
    cast_frozen,
    check_item,
    collate,
    configure_trainable,
    cosine_loss,
    final_unet_vae,
    image_ids,
    improves,
    param_groups,
    sample_timesteps,
    stack_eeg,
)
from dreamdiffusion.training.tokenizer_init import NORM_FILE, TOKENIZER_FILE, calibrate_affine_norm, ridge_tokenizer

logger = logging.getLogger(__name__)

# Test-only hook (not a CLI option): write seen_pairs/rank-<r>.json, the image names each process trained on.
RECORD_PAIRS_ENV = "DREAMDIFFUSION_RECORD_PAIRS"


def _broadcast(obj):
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj])[0]


class Trainer:
    """One Stage B run: ``Trainer(cfg, train, val).setup()`` then ``.run()`` -> the final pipeline folder."""

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
        self.log = JsonlLog(self.out / METRICS_FILE, enabled=self.acc.is_main_process)
        self._select = None  # (val items, their CLIP truths) of --select-metric gen_clip, made once

    # -- setup
    def _input_shape(self) -> tuple[int, int, float | None]:
        """(channels, samples, sampling rate or None) of the train split's EEG, checked on its first item."""
        if len(self.train_ds) == 0:
            raise DataError("the train split is empty", self.cfg.dataset)
        first = self.train_ds[0]
        check_item(first, 0)
        eeg = torch.as_tensor(first["eeg"])
        if eeg.ndim != 2:
            raise DataError(f"dataset EEG items must be [channels, samples], got shape {tuple(eeg.shape)}",
                            self.cfg.dataset)
        return int(eeg.shape[0]), int(eeg.shape[1]), getattr(getattr(self.train_ds, "spec", None), "sfreq", None)

    def setup(self) -> None:
        cfg, acc = self.cfg, self.acc
        p = self.parts = build_parts(cfg, *self._input_shape())
        # Paper preprocessing: resize; in training a random crop-and-resize. The generator is set per
        # batch (batch_tensors), so each step's augmentation is reproducible.
        self.train_transform = ImageTransform(p.resolution, train=True, crop_ratio=cfg.crop_ratio, crop_p=cfg.crop_prob)
        self.eval_transform = ImageTransform(p.resolution, train=False)
        configure_trainable(p.conditioner, p.unet, p.vae, p.clip, cfg)
        if cfg.gradient_checkpointing:
            p.unet.enable_gradient_checkpointing()
            p.conditioner.enable_gradient_checkpointing()
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(cfg.mixed_precision, torch.float32)
        cast_frozen(p, acc.device, self.weight_dtype)
        self.targets = FrozenTargets(p.clip, p.clip_processor, p.vae)
        self.targets.prepare([self.train_ds, self.val_ds], self.eval_transform, acc.device, self.weight_dtype)
        if cfg.tokenizer_init == "ridge" and not cfg.resume:  # a resumed run's tokenizer is in its checkpoint
            record = ridge_tokenizer(p.conditioner.encoder, self.train_ds, self.targets.clip_embeds)
            if acc.is_main_process:
                self.out.mkdir(parents=True, exist_ok=True)
                atomic_write_json(self.out / TOKENIZER_FILE, record)
        if cfg.encoder_norm == "affine" and not cfg.resume:  # after the tokenizer's start: the tokens it makes
            record = calibrate_affine_norm(p.conditioner.encoder, self.train_ds, acc.device)
            if record is not None and acc.is_main_process:
                self.out.mkdir(parents=True, exist_ok=True)
                atomic_write_json(self.out / NORM_FILE, record)
        if cfg.null_init == "base" and not cfg.resume:
            null = base_null_context(cfg.base)
            if null.shape != p.conditioner.null_cond.shape:
                raise ConfigError(f"--null-init base: the base's null context is {tuple(null.shape)}, the "
                                  f"conditioner's {tuple(p.conditioner.null_cond.shape)}", cfg.base)
            with torch.no_grad():
                p.conditioner.null_cond.copy_(null)
        if cfg.class_context:  # before the warm-up: its caption loss trains the rest of the context around it
            record = fit_class_context(p.conditioner, self.train_ds, cfg.base, self.val_ds, source=cfg.dataset)
            logger.info("class context: %d classes, the discriminant's train accuracy %.3f, val %s",
                        len(record["classes"]), record["train_accuracy"], record.get("val_accuracy"))
            if acc.is_main_process:
                self.out.mkdir(parents=True, exist_ok=True)
                atomic_write_json(self.out / CLASS_CONTEXT_FILE, record)
        # Before `prepare`: every process runs the same seeded warm-up, and DDP starts from rank 0's weights.
        warm = {}
        if cfg.clip_warmup_steps and not cfg.resume:
            if acc.is_main_process:
                self.out.mkdir(parents=True, exist_ok=True)
            warm = clip_warmup(cfg, p, self.train_ds, self.val_ds, acc.device,
                               self.out if acc.is_main_process else None, targets=self.targets)
        if cfg.clip_head != "pool":
            if cfg.resume:  # the checkpoint holds the fitted head (its scale is in the refit's record)
                width, length = p.conditioner.head_input_shape(cfg.clip_head)
                scale, prior = refit_state(self.out, p.conditioner.config.clip_dim)
                p.conditioner.use_filters_head(filters_head(width, length, p.conditioner.config.clip_dim,
                                                            cfg.clip_head_filters, cfg.clip_head_bins),
                                               scale, cfg.clip_head, prior)
            else:
                refit_clip_head(cfg, p.conditioner, self.train_ds, self.val_ds, self.targets, acc.device,
                                self.out if acc.is_main_process else None)
        if cfg.encoder_learning_rate == 0:  # frozen from here on: no gradient through it at all
            p.conditioner.encoder.requires_grad_(False)
        if cfg.freeze_clip_head:  # (on resume too: the checkpoint holds the head the warm-up left)
            for module in p.conditioner.clip_head_modules():
                module.requires_grad_(False)
        # The joint phase goes on at the temperature the warm-up reached.
        self.system = TrainableSystem(p.conditioner, p.unet, contrastive=cfg.align == "contrastive",
                                      **({"init_logit_scale": warm["logit_scale"]} if "logit_scale" in warm else {}))
        self.per_epoch = len(self.train_ds) // (cfg.batch_size * self.world)
        if self.per_epoch == 0:
            raise DataError(f"the train split has {len(self.train_ds)} pairs, fewer than one batch of "
                            f"{cfg.batch_size} x {self.world} process(es) (lower --batch-size)", cfg.dataset)
        steps_per_epoch = max(1, self.per_epoch // cfg.gradient_accumulation_steps)
        self.max_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
        params = [q for q in self.system.parameters() if q.requires_grad]
        self.n_trainable = sum(q.numel() for q in params)
        optimizer = torch.optim.AdamW(param_groups(params, p.conditioner, p.unet, cfg), lr=cfg.learning_rate,
                                      weight_decay=cfg.weight_decay)
        from diffusers.optimization import get_scheduler

        # Accelerate steps a prepared scheduler once per process each optimizer step, hence the "* world".
        lr_sched = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps * self.world,
                                 num_training_steps=self.max_steps * self.world)
        self.system, self.optimizer, self.lr_sched = acc.prepare(self.system, optimizer, lr_sched)

        logger.info("finetune: %d train pairs, %s val pairs, %d steps (%d per epoch), %d trainable parameters (%s)",
                    len(self.train_ds), len(self.val_ds) if self.val_ds is not None else "no", self.max_steps,
                    steps_per_epoch, self.n_trainable, cfg.train)

    # -- one batch
    def batch_tensors(self, items: list, train: bool, gen: torch.Generator):
        p, dev = self.parts, self.acc.device
        eeg = stack_eeg(items).to(dev)
        transform = self.train_transform if train else self.eval_transform
        transform.generator = gen
        drawn = [transform.apply(it["image"]) for it in items]
        pixels = torch.stack([px for px, _ in drawn]).to(dev, self.weight_dtype)
        with torch.no_grad():
            # Frozen targets, outside any graph; each un-augmented image's posterior and CLIP embedding only once.
            mean, std = self.targets.posterior(items, pixels, [aug for _, aug in drawn])
            eps = torch.randn(mean.shape, generator=gen).to(dev, mean.dtype)
            latents = (mean + std * eps) * p.vae.config.scaling_factor
        image_embeds = self.targets.clip_embeds(items)
        b = eeg.shape[0]
        noise = torch.randn(latents.shape, generator=gen).to(dev, latents.dtype)
        t = sample_timesteps(b, p.noise_scheduler.config.num_train_timesteps, gen,
                             self.cfg.timestep_bias if train else "none", self.cfg.timestep_bias_multiplier,
                             self.cfg.timestep_bias_portion).to(dev)
        drop = (torch.rand(b, generator=gen) < (self.cfg.cond_dropout if train else 0.0)).to(dev)
        noisy = p.noise_scheduler.add_noise(latents, noise, t)
        return eeg, noisy, noise, t, drop, image_embeds, image_ids(items).to(dev)

    def losses(self, model, batch):
        """``(total, eps MSE, CLIP-alignment loss, mean cosine of the CLIP head to its images)``."""
        eeg, noisy, noise, t, drop, image_embeds, ids = batch
        with self.acc.autocast():
            eps_pred, clip_pred = model(eeg, noisy, t, drop)
        mse = F.mse_loss(eps_pred.float(), noise.float())
        cos_loss = cosine_loss(clip_pred, image_embeds)
        clip_loss = cos_loss if self.cfg.align == "cosine" else alignment_loss(
            "contrastive", clip_pred, image_embeds, self.acc.unwrap_model(model).logit_scale, ids,
            self.cfg.align_cosine_weight)
        return mse + self.cfg.clip_weight * clip_loss, mse, clip_loss, 1.0 - cos_loss.detach()

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
            loss, mse, _, cos = self.losses(model, self.batch_tensors(items, False, gen))
            for k, v in (("val_loss", loss), ("val_mse", mse), ("val_clip_cos", cos)):
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

    def make_pipeline(self, model, scheduler_name: str = "dpm", unet=None, vae=None) -> DreamDiffusionPipeline:
        sched = make_scheduler(scheduler_name, self.parts.scheduler_config)
        pre = preprocessing_record(self.train_ds, self.cfg.dataset)  # how raw EEG became the pairs' input
        return DreamDiffusionPipeline(unet=model.unet if unet is None else unet,
                                      vae=self.parts.vae if vae is None else vae, scheduler=sched,
                                      eeg_conditioner=model.conditioner, preprocessing=pre)

    def validation_images(self, step: int, model) -> None:
        """``validation/step-<step>.png``: the first val images (top row) over what the model draws from their EEG."""
        cfg = self.cfg
        items = [self.val_ds[i] for i in range(min(cfg.validation_images, len(self.val_ds)))]
        pipe = self.make_pipeline(model)
        pipe.set_progress_bar_config(disable=True)
        with self.acc.autocast():  # the UNet may hold half-precision frozen and fp32 trained weights
            images = draw_images(pipe, stack_eeg(items), 1, cfg.validation_inference_steps, cfg.guidance_scale,
                                 cfg.seed)
        images = [row[0] for row in images]
        truth = [it["image"].convert("RGB").resize(images[0].size) for it in items]
        atomic_write_png(self.out / "validation" / f"step-{step:07d}.png", image_grid([truth, images]))

    # -- main loop
    def _start(self, manager: CheckpointManager) -> tuple[int, dict | None]:
        """(first step, best so far): 0 for a fresh run, the latest checkpoint's step with --resume."""
        cfg, acc = self.cfg, self.acc
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
            self.log.truncate_after(start)  # records of steps after the checkpoint will be redone
        return start, best

    def _step(self, step: int, batches, seen: dict | None, last_ckpt) -> dict:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns its metrics record."""
        cfg, acc, k = self.cfg, self.acc, self.cfg.gradient_accumulation_steps
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(step_seed(cfg.seed, step, self.rank))
        logs = {"loss": 0.0, "mse": 0.0, "clip_loss": 0.0}
        skipped = False
        for j in range(k):
            items = next(batches)
            if seen is not None:
                seen.setdefault(step, []).extend(str(it.get("image_name")) for it in items)
            batch = self.batch_tensors(items, True, gen)
            with acc.no_sync(self.system) if j < k - 1 else contextlib.nullcontext():
                loss, mse, clip_loss, _ = self.losses(self.system, batch)
                if not torch.isfinite(acc.gather(loss.detach()[None])).all():
                    if not cfg.skip_nonfinite:
                        raise TrainingError(
                            f"the loss became {float(loss.detach())} at step {step}; stopped. The last good checkpoint "
                            f"is {last_ckpt or 'none'} (lower --learning-rate, use --mixed-precision bf16 or no, or "
                            "pass --skip-nonfinite)", self.out)
                    logger.warning("step %d: non-finite loss, batch skipped", step)
                    skipped = True
                    break
                acc.backward(loss / k)
            for key, v in (("loss", loss), ("mse", mse), ("clip_loss", clip_loss)):
                logs[key] += float(v.detach()) / k
        if not skipped:
            if cfg.max_grad_norm and cfg.max_grad_norm > 0:
                acc.clip_grad_norm_([q for q in self.system.parameters() if q.requires_grad], cfg.max_grad_norm)
            self.optimizer.step()
            self.lr_sched.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"step": step + 1, **{key: float(acc.reduce(torch.tensor(v, device=acc.device), "mean"))
                                     for key, v in logs.items()},
                "lr": self.lr_sched.get_last_lr()[0], "seconds": time.perf_counter() - t0}

    def _maybe_validate(self, done: int, record: dict, best: dict | None) -> dict | None:
        """Validate when due (main process); save the weights when they beat ``best``; return the new best."""
        cfg = self.cfg
        if (cfg.validate_every and done % cfg.validate_every == 0) or done == self.max_steps:
            val = self.validate(done)
            if val is not None:
                record.update(val)
                if improves(val, best, cfg.select_metric):
                    key = SELECT_METRICS[cfg.select_metric][0]
                    best = {"step": done, "val_loss": val["val_loss"], "metric": key, "value": val[key]}
                    self._save_best(done)
        return best

    def run(self) -> Path:
        cfg, acc = self.cfg, self.acc
        manager = CheckpointManager(self.out, cfg.checkpoints_total_limit)
        start, best = self._start(manager)
        k = cfg.gradient_accumulation_steps
        # One micro-batch per sampler "step": step s uses micro-batches s * k .. s * k + k - 1.
        sampler = StepBatchSampler(len(self.train_ds), cfg.batch_size, cfg.seed, self.max_steps * k, start * k,
                                   num_replicas=self.world, rank=self.rank)
        loader = torch.utils.data.DataLoader(self.train_ds, batch_sampler=sampler, collate_fn=collate,
                                             num_workers=cfg.num_workers)
        batches = iter(loader)
        self.system.train()
        last_ckpt = manager.latest()
        seen: dict[int, list[str]] | None = {} if os.environ.get(RECORD_PAIRS_ENV) == "1" else None
        bar = tqdm(range(start, self.max_steps), initial=start, total=self.max_steps, desc="finetune",
                   disable=not acc.is_local_main_process)
        for step in bar:
            record = self._step(step, batches, seen, last_ckpt)
            done = record["step"]
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            if acc.is_main_process:
                best = self._maybe_validate(done, record, best)
                self.log.write(record)
            acc.wait_for_everyone()
            best = _broadcast(best)
            if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == self.max_steps:
                last_ckpt = manager.save(acc, done, {"best": best}, epoch=(done * k) // self.per_epoch)
        if seen is not None:
            atomic_write_json(self.out / "seen_pairs" / f"rank-{self.rank}.json", {"steps": seen})
        return self._finish(best)

    def _finish(self, best: dict | None) -> Path:
        """Load the best val step's weights (``--select best``), save the pipeline, final.json and loss.png."""
        cfg, acc = self.cfg, self.acc
        model = acc.unwrap_model(self.system)
        if cfg.select == "best" and best is not None and (self.out / BEST_FILE).is_file():
            self._load_best(model)
            logger.info("final model: best on val (step %d, %s %.5f)", best["step"], best.get("metric", "val_loss"),
                        best.get("value", best["val_loss"]))
        elif cfg.select == "best":
            logger.warning("no validation ran: the final model is the last step")
        final = self.out / PIPELINE_DIR
        if acc.is_main_process:
            unet, vae = final_unet_vae(cfg, model.unet, self.parts.vae, self.weight_dtype)
            atomic_save_pretrained(self.make_pipeline(model, unet=unet, vae=vae), final)
            atomic_write_json(self.out / "final.json", {"select": cfg.select, "best": best,
                                                         "pipeline": PIPELINE_DIR, "steps": self.max_steps})
            if self.log.path.exists():
                plot_finetune_curves(self.log.path, self.out / "loss.png")
            logger.info("wrote %s", final)
        acc.wait_for_everyone()
        acc.end_training()
        return final

    def _load_best(self, model) -> None:
        state = load_file(str(self.out / BEST_FILE))
        params = dict(model.named_parameters())
        missing = set(state) - set(params)
        if missing:
            raise TrainingError(f"best weights do not fit the model ({sorted(missing)[:3]})", self.out / BEST_FILE)
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)

    def _save_best(self, step: int) -> None:
        model = self.acc.unwrap_model(self.system)
        state = {n: q.detach().to("cpu", torch.float32).contiguous() for n, q in model.named_parameters()
                 if q.requires_grad}
        atomic_write_bytes(self.out / BEST_FILE, safetensors_bytes(state, metadata={"step": str(step)}))


def plot_finetune_curves(metrics_file: Path, figure: Path) -> Path | None:
    """Train loss per step and val loss per validation of a Stage B run (``loss.png``)."""
    rows = read_jsonl(metrics_file)
    if not rows:
        return None
    return plot_loss_curves(rows, figure, title="Stage B: fine-tuning",
                            ylabel="loss (train: eps MSE + clip_weight x CLIP loss)", logy=False)


__all__ = ["Trainer", "plot_finetune_curves", "RECORD_PAIRS_ENV"]
