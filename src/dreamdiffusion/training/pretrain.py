"""Stage A: masked signal modeling (MSM) pretraining of the EEG encoder on Hugging Face Accelerate.

One process on a CPU, or ``accelerate launch`` on many GPUs/machines, with the same code.
Defaults are the paper's (reference ``code/config.py``): AdamW (0.9, 0.95), weight decay 0.05
without decay on biases and norms, lr 2.5e-4 with linear warm-up then half-cycle cosine per
step, gradient clipping at 0.8, batch 100, mask ratio 0.75, 500 epochs, seed 2022.

Outputs in ``OUTPUT``: the encoder (``config.json`` + ``diffusion_pytorch_model.safetensors``,
loadable with ``EEGEncoder.from_pretrained(OUTPUT)``), the whole MSM model in ``OUTPUT/msm``,
``pretrain_config.json`` (the resolved config), ``metrics.jsonl``, ``pretrain_summary.json``,
``reconstruction.png``, ``loss.png``, and resumable checkpoints in ``OUTPUT/checkpoints``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dreamdiffusion.core.config import dataclass_from_dict
from dreamdiffusion.core.errors import ConfigError, DataError, TrainingError
from dreamdiffusion.data.corpus import CorpusDataset
from dreamdiffusion.data.transforms import binned_means
from dreamdiffusion.evaluation.figures import fmt
from dreamdiffusion.evaluation.probe import PROBE_BINS
from dreamdiffusion.evaluation.reconstruction import masked_pearson_r  # re-exported
from dreamdiffusion.models.eeg_encoder import BLOCK_INITS, PATCH_INITS, PRESETS, MaskedSignalModel, init_patch_embed
from dreamdiffusion.training.checkpoint import (
    CheckpointManager,
    atomic_save_pretrained,
    atomic_write_json,
)
from dreamdiffusion.training.loop import (
    STREAM_MASK,
    JsonlLog,
    StepBatchSampler,
    Throughput,
    adamw_param_groups,
    all_finite,
    read_jsonl,
    seed_everything,
    seeded_generator,
    split_param_groups,
    warmup_cosine_scheduler,
)
from dreamdiffusion.training.pretrain_scores import (  # evaluate_msm, reconstruct_signal: re-exported
    evaluate_msm,
    pretrain_figures,
    probe_encoder,
    reconstruct_signal,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "pretrain_config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "pretrain_summary.json"
MIXED_PRECISION_CHOICES = ("no", "fp16", "bf16")
# The paper warms up for 40 of its 500 epochs; without an explicit --warmup-steps we keep that share.
PAPER_WARMUP_SHARE = 40 / 500
# Test-only hook (not a CLI option): like record_indices, write seen_indices/rank-<r>.json.
RECORD_INDICES_ENV = "DREAMDIFFUSION_RECORD_INDICES"


@dataclass
class PretrainConfig:
    """Every hyper-parameter of Stage A in one place (CLI flags map one to one onto these fields)."""

    corpus: str = ""                       # corpus folder (manifest.json + shards), from `data build-corpus`
    output: str = ""                       # run folder: final encoder, msm/, checkpoints/, logs, figures
    preset: str = "paper"                  # model size: paper (152M encoder) | small (2 layers) | tiny (tests)
    mask_ratio: float = 0.75               # share of time tokens hidden from the encoder (paper's best)
    norm_target: bool = False              # reconstruct per-token normalised targets (MAE's norm_pix_loss)
    predict_stats: bool = False            # with norm_target: also predict each token's mean and log-std, so
                                           # reconstructions (and val scores) use nothing of the hidden samples
    mask_span: int = 1                     # mask runs of this many neighbouring tokens (1: single tokens, paper)
    alibi: bool = False                    # ALiBi distance bias in encoder and decoder attention: a locality
                                           # prior that lets a small model learn in hundreds of steps (paper: off)
    patch_init: str = "xavier"             # patch embedding's start: xavier (paper) | orthogonal (orthonormal
                                           # spatial filters of the patch mean; keeps more of the evoked response)
                                           # | pca (the corpus' whitened principal components as those filters)
    patch_whiten: bool = True              # with pca: each component scaled to unit variance; off: the unit-norm
                                           # components as they are (the background keeps its larger scale)
    freeze_patch_embed: bool = False       # keep the patch embedding at its start through Stage A (the blocks and
                                           # decoder train): what the start keeps of the EEG stays in the tokens
    block_init: str = "xavier"             # transformer blocks' start: xavier (paper) | zero (each residual
                                           # branch's last layer zero: the blocks start as the identity)
    visible_loss_weight: float = 0.0       # also rebuild the visible tokens, at this weight beside the masked
                                           # ones (paper: 0, masked tokens only)
    final_norm: bool = True                # the encoder's last LayerNorm (paper: on); off hands on the blocks' output
    embed_dim: int | None = None           # token width instead of the preset's (None: the preset's)
    decoder_embed_dim: int | None = None   # the MSM decoder's width instead of the preset's (None: the preset's)
    decoder_depth: int | None = None       # the MSM decoder's blocks instead of the preset's (None: the preset's)
    max_steps: int | None = None           # stop after this many optimizer steps (overrides epochs)
    epochs: int | None = None              # passes over the training windows; None and no max_steps: 500
    batch_size: int = 100                  # windows per process per step (paper: 100)
    learning_rate: float = 2.5e-4          # peak lr after warm-up (paper: 2.5e-4, not scaled by batch)
    encoder_learning_rate: float | None = None  # the encoder's own peak lr, the decoder at learning_rate (None:
                                           # one rate, the paper's): a slower encoder leaves the rebuilding to
                                           # the decoder and keeps more of what its start carried of the EEG
    warmup_steps: int | None = None        # linear warm-up steps; None: 8% of the run (paper 40/500 epochs)
    weight_decay: float = 0.05             # AdamW decay on weight matrices (none on biases/norms)
    adam_beta1: float = 0.9                # AdamW beta1
    adam_beta2: float = 0.95               # AdamW beta2 (MAE/paper: 0.95)
    adam_epsilon: float = 1e-8             # AdamW epsilon
    max_grad_norm: float = 0.8             # gradient clipping by global norm (paper: 0.8); 0 disables
    mixed_precision: str = "no"            # no | fp16 | bf16 (Accelerate autocast; fp16 adds a grad scaler)
    gradient_checkpointing: bool = False   # recompute transformer blocks in backward to save memory
    checkpoint_every: int = 1000           # save a resumable checkpoint every N steps and at the end (0: never)
    checkpoints_total_limit: int | None = None  # keep only the newest K checkpoints
    resume: bool = False                   # continue from the newest complete checkpoint in `output`
    seed: int = 2022                       # seeds init, data order and masks (paper: 2022)
    num_workers: int = 0                   # DataLoader worker processes
    val_every: int = 500                   # validate every N steps (0: only at the end)
    val_fraction: float = 0.05             # share of corpus windows held out for validation
    val_max_batches: int | None = 20       # cap validation cost per evaluation (None: whole val split)
    log_every: int = 10                    # write a metrics.jsonl record every N steps
    skip_nan_batches: bool = False         # skip a step whose loss is NaN/Inf instead of stopping
    compile: bool = False                  # torch.compile the model (faster on GPU; slow to start)
    record_indices: bool = False           # write the window indices each rank trained on (debugging)
    probe_dataset: str = ""                # paired dataset (e.g. synthetic) for a linear probe at the end ("": none)
    probe_dataset_options: dict = dataclasses.field(default_factory=dict)  # its options, e.g. {"root": DIR}
    probe_bins: int = PROBE_BINS           # time bins the probe averages tokens (and the raw EEG) into

    # ---- JSON round trip

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PretrainConfig":
        data = {k: v for k, v in data.items() if k != "resolved"}  # derived values written beside the fields
        return dataclass_from_dict(cls, data, "pretrain config keys")

    def to_json(self, path: str | os.PathLike, resolved: dict | None = None) -> Path:
        return atomic_write_json(path, {**self.to_dict(), **({"resolved": resolved} if resolved else {})})

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "PretrainConfig":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the pretrain config: {exc}", path) from None
        if not isinstance(data, dict):
            raise ConfigError("a pretrain config must be a JSON object", path)
        return cls.from_dict(data)

    def validate(self) -> None:
        def bad(msg):
            raise ConfigError(msg)

        if not self.corpus:
            bad("no corpus given (--corpus DIR)")
        if not self.output:
            bad("no output folder given (--output DIR)")
        if self.preset not in PRESETS:
            bad(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.patch_init not in PATCH_INITS:
            bad(f"unknown --patch-init {self.patch_init!r}; choose one of {', '.join(PATCH_INITS)}")
        if not self.patch_whiten and self.patch_init != "pca":
            bad(f"--no-patch-whiten is for --patch-init pca (the corpus' components), not {self.patch_init}")
        if self.block_init not in BLOCK_INITS:
            bad(f"unknown --block-init {self.block_init!r}; choose one of {', '.join(BLOCK_INITS)}")
        if not 0.0 <= self.mask_ratio < 1.0:
            bad(f"--mask-ratio must be in [0, 1), got {self.mask_ratio}")
        if self.max_steps is not None and self.epochs is not None:
            bad("give --max-steps or --epochs, not both")
        if self.encoder_learning_rate is not None and self.encoder_learning_rate <= 0:
            bad(f"--encoder-learning-rate must be positive, got {self.encoder_learning_rate}")
        for name in ("decoder_embed_dim", "decoder_depth"):
            value = getattr(self, name)
            if value is not None and value < 1:
                bad(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in ("max_steps", "epochs", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                bad(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.learning_rate <= 0:
            bad(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            bad(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            bad(f"--mixed-precision must be one of {', '.join(MIXED_PRECISION_CHOICES)}, got {self.mixed_precision!r}")
        for name in ("checkpoint_every", "val_every", "num_workers"):
            if getattr(self, name) < 0:
                bad(f"--{name.replace('_', '-')} must be >= 0")
        if self.log_every < 1:
            bad("log_every must be at least 1")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            bad(f"--checkpoints-total-limit must be at least 1, got {self.checkpoints_total_limit}")
        if self.mask_span < 1:
            bad(f"--mask-span must be at least 1, got {self.mask_span}")
        if self.predict_stats and not self.norm_target:
            bad("--predict-stats needs --norm-target (it predicts the statistics the normalisation removes)")
        if self.embed_dim is not None and self.embed_dim < 1:
            bad(f"--embed-dim must be at least 1, got {self.embed_dim}")
        if self.visible_loss_weight < 0 or not math.isfinite(self.visible_loss_weight):
            bad(f"--visible-loss-weight must be a finite number >= 0, got {self.visible_loss_weight}")
        if self.probe_bins < 1:
            bad(f"--probe-bins must be at least 1, got {self.probe_bins}")
        if not 0.0 <= self.val_fraction < 1.0:
            bad(f"val_fraction must be in [0, 1), got {self.val_fraction}")


# --------------------------------------------------------------------------- the run

def _resolve_steps(config: PretrainConfig, n_train: int, world: int) -> dict:
    global_batch = config.batch_size * world
    steps_per_epoch = n_train // global_batch
    if steps_per_epoch < 1:
        raise DataError(f"the corpus has {n_train} training windows, fewer than one global batch of "
                        f"{global_batch} (--batch-size {config.batch_size} x {world} processes); "
                        "lower --batch-size or add data", config.corpus)
    if config.max_steps is not None:
        total = config.max_steps
    else:
        total = (config.epochs if config.epochs is not None else 500) * steps_per_epoch
    warmup = config.warmup_steps if config.warmup_steps is not None else int(round(PAPER_WARMUP_SHARE * total))
    return {"steps_per_epoch": steps_per_epoch, "total_steps": total, "warmup_steps": min(warmup, total),
            "global_batch_size": global_batch, "num_processes": world}


def _make_accelerator(config: PretrainConfig):
    from accelerate import Accelerator

    # `accelerate launch --multi_gpu --num_processes N` on a machine without any GPU: Accelerate
    # only picks its CPU backend (gloo) when asked for the CPU, so ask for it here.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cpu = distributed and not torch.cuda.is_available() and not _other_accelerator_available()
    if cpu:
        logger.info("distributed launch without a GPU: training on %s CPU processes (gloo)", os.environ["WORLD_SIZE"])
    try:
        return Accelerator(mixed_precision=config.mixed_precision, cpu=cpu)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"--mixed-precision {config.mixed_precision} is not available here: {exc}") from None


def _other_accelerator_available() -> bool:
    xpu = getattr(torch, "xpu", None)
    return bool(xpu is not None and xpu.is_available())


def _check_output(config: PretrainConfig, manager: CheckpointManager) -> None:
    output = Path(config.output)
    if output.exists() and not output.is_dir():
        raise ConfigError("output exists and is not a folder", output)
    if not config.resume and ((output / CONFIG_FILE).exists() or manager.latest() is not None):
        raise ConfigError("the output folder already holds a pretraining run; pass --resume to continue it "
                          "or choose a new --output", output)


def _compare_resumed_config(saved: dict, config: PretrainConfig, path: Path) -> None:
    # The model shape is checked by load_state itself; these only change what "the same run" means.
    for key in ("seed", "batch_size", "mask_ratio", "norm_target", "preset", "learning_rate", "corpus", "mask_span",
                "predict_stats", "alibi", "patch_init", "block_init", "visible_loss_weight", "final_norm",
                "embed_dim", "patch_whiten", "freeze_patch_embed", "encoder_learning_rate"):
        if key in saved and saved[key] != getattr(config, key):
            logger.warning("resuming %s with %s=%r (the checkpoint was written with %r): the result will "
                           "differ from an uninterrupted run", path, key, getattr(config, key), saved[key])


def _build_model(config: PretrainConfig, train_set):
    """A freshly initialised (``seed``) MSM model of ``config.preset`` for the corpus windows."""
    seed_everything(config.seed)  # the model's initial weights
    try:
        model = MaskedSignalModel.from_preset(
            config.preset, n_chans=train_set.n_chans, n_times=train_set.n_times, sfreq=float(train_set.sfreq),
            mask_ratio=config.mask_ratio, norm_target=config.norm_target, mask_span=config.mask_span,
            predict_stats=config.predict_stats, alibi=config.alibi, patch_init=config.patch_init,
            block_init=config.block_init, visible_loss_weight=config.visible_loss_weight, final_norm=config.final_norm,
            **{k: getattr(config, k) for k in ("embed_dim", "decoder_embed_dim", "decoder_depth")
               if getattr(config, k) is not None})
    except ValueError as exc:
        width = "" if config.embed_dim is None else f" at --embed-dim {config.embed_dim}"
        raise ConfigError(f"preset {config.preset!r}{width} cannot be built for the corpus windows "
                          f"({train_set.n_chans} x {train_set.n_times}): {exc}", config.corpus) from None
    if config.patch_init == "pca":
        conv = model.encoder.patch_embed
        filters = corpus_spatial_filters(train_set, conv.out_channels, conv.kernel_size[0], config.seed,
                                         whiten=config.patch_whiten)
        with torch.no_grad():
            init_patch_embed(conv.weight, "pca", filters)
    if config.freeze_patch_embed:  # (AdamW's groups skip frozen weights: no update, no weight decay either)
        model.encoder.patch_embed.requires_grad_(False)
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return model


def corpus_spatial_filters(dataset, n_filters: int, patch_size: int, seed: int, n_windows: int = 512,
                           whiten: bool = True) -> torch.Tensor:
    """The ``n_filters`` leading principal components ``[n_filters, C]`` of the patch means (``patch_size`` samples
    averaged) of up to ``n_windows`` corpus windows drawn with ``seed``, each scaled to unit variance (``whiten``) or
    of unit norm.

    Unlabeled windows only: what Stage A may see. Why whitened: the encoder ends in a LayerNorm, which divides every
    token by its spread; with raw components that spread is the background's few leading components, and dividing by
    it multiplies the evoked part by noise. Whitened, the spread averages many components and hardly moves. Without
    the final norm (``--no-final-norm``) nothing divides, and the components as they are keep the EEG's own scales: a
    ridge read-out of them comes within 0.025 of one of the raw EEG (docs/pretrain.md), where whitening lifts 64
    background directions to the evoked part's level and loses another 0.025-0.03.
    """
    n = len(dataset)
    if n == 0:
        raise DataError("no training windows to compute spatial filters from (--patch-init pca)")
    n_chans, n_times = np.asarray(dataset[0]).shape
    if n_filters > n_chans:  # (before reading the windows)
        raise ConfigError(f"--patch-init pca gives at most {n_chans} filters (the channels), the encoder is "
                          f"{n_filters} wide: use --patch-init orthogonal")
    rows = np.random.default_rng(seed).choice(n, size=min(n, n_windows), replace=False)
    x = np.stack([np.asarray(dataset[int(i)], dtype=np.float64) for i in sorted(rows)])  # [n, C, T]
    n_patches = n_times // patch_size
    means = binned_means(x, n_patches).reshape(len(x), n_chans, n_patches)  # each patch's mean
    evals, vecs = np.linalg.eigh(np.cov(means.transpose(0, 2, 1).reshape(-1, n_chans).T))
    order = np.argsort(evals)[::-1][:n_filters]
    filters = vecs[:, order] / np.sqrt(np.maximum(evals[order], 1e-12)) if whiten else vecs[:, order]
    return torch.from_numpy(filters.T.copy()).float()


def _prepare(accelerator, model, config: PretrainConfig, plan: dict):
    """(model, optimizer, scheduler) prepared by Accelerate (compiled first with ``--compile``)."""
    groups = adamw_param_groups(model, config.weight_decay)
    if config.encoder_learning_rate is not None:
        groups = split_param_groups(groups, model.encoder, lr=config.encoder_learning_rate)
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate,
                                  betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_epsilon)
    scheduler = warmup_cosine_scheduler(optimizer, plan["warmup_steps"], plan["total_steps"], plan["num_processes"])
    if config.compile:
        # Static shapes: every training batch has the same shape; a dynamic-shape graph (what torch.compile
        # falls back to after a second shape) would be slower and recompile at the first odd batch.
        model = torch.compile(model, dynamic=False)
    return accelerator.prepare(model, optimizer, scheduler)


def _resume(accelerator, manager: CheckpointManager, config: PretrainConfig, metrics: JsonlLog, total_steps: int) -> int:
    """The step to start from: 0, or with ``--resume`` the newest complete checkpoint's (its state loaded)."""
    if not config.resume:
        return 0
    checkpoint = manager.latest()
    if checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s, starting a new run", manager.root)
        return 0
    state = manager.load(accelerator, checkpoint)
    _compare_resumed_config(state.get("extra", {}).get("config", {}), config, checkpoint)
    metrics.truncate_after(state["step"])
    logger.info("resumed from %s at step %d of %d", checkpoint, state["step"], total_steps)
    return state["step"]


@dataclass
class _Run:
    """One pretraining run after setup: the training loop and the final outputs."""

    config: PretrainConfig
    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    manager: CheckpointManager
    metrics: JsonlLog
    plan: dict
    train_set: Any
    val_set: Any
    start_step: int
    resolved: dict
    start_encoder: Any = None  # the encoder as training started: the probe's untrained twin

    def save_checkpoint(self, at_step: int) -> None:
        self.manager.save(self.accelerator, at_step, {"config": self.config.to_dict()},
                          epoch=at_step // self.plan["steps_per_epoch"])

    def _nonfinite(self, step: int, mean_loss: float, bar) -> None:
        """A NaN/Inf loss: stop (keeping the last checkpoint) or, with --skip-nan-batches, skip the step."""
        if not self.config.skip_nan_batches:
            bar.close()
            kept = self.manager.latest()
            where = f"the last good checkpoint is kept at {kept}" if kept else "no checkpoint had been written yet"
            raise TrainingError(
                f"the loss became {mean_loss} at step {step} (non-finite); training stopped and {where}. "
                "Check the corpus for extreme values, lower --learning-rate or use --mixed-precision no, "
                "then --resume; or pass --skip-nan-batches to skip such batches", self.config.output)
        logger.warning("step %d: non-finite loss %s, batch skipped (--skip-nan-batches)", step, mean_loss)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()  # keep the schedule aligned with the step count
        self.metrics.write({"step": step + 1, "skipped_nonfinite": True})

    def _optimizer_step(self, loss) -> float | None:
        """Backward, clip, step; the gradient norm before clipping (None without clipping)."""
        acc, cfg = self.accelerator, self.config
        acc.backward(loss)
        grad_norm = None
        if cfg.max_grad_norm > 0 and acc.sync_gradients:
            grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return None if grad_norm is None else float(grad_norm)

    def train(self) -> tuple[int, int, list, float]:
        """Steps ``start_step .. total_steps - 1``; returns (last step, skipped steps, seen indices, start time)."""
        cfg, acc, plan = self.config, self.accelerator, self.plan
        total_steps, rank, device = plan["total_steps"], acc.process_index, acc.device
        sampler = StepBatchSampler(len(self.train_set), cfg.batch_size, cfg.seed, total_steps, self.start_step,
                                   num_replicas=acc.num_processes, rank=rank)
        loader = torch.utils.data.DataLoader(self.train_set, batch_sampler=sampler, num_workers=cfg.num_workers,
                                             pin_memory=device.type == "cuda")
        seen: list[list[int]] = []
        bar = tqdm(total=total_steps, initial=self.start_step, desc="pretrain", unit="step",
                   disable=not acc.is_main_process, dynamic_ncols=True)
        speed = Throughput()
        step, skipped, last_saved, started = self.start_step, 0, self.start_step if self.start_step else None, time.time()
        self.model.train()
        for eeg in loader:
            eeg = eeg.to(device, non_blocking=True)
            if cfg.record_indices:
                seen.append(sampler.indices_for_step(step))
            # Masks depend on (seed, step, rank) only: a resumed run draws the same ones.
            loss, _pred, _mask = self.model(eeg, generator=seeded_generator(cfg.seed, STREAM_MASK, step, rank,
                                                                            device=device))
            finite, mean_loss = all_finite(acc, loss)
            if not finite:
                self._nonfinite(step, mean_loss, bar)
                skipped += 1
            else:
                grad_norm = self._optimizer_step(loss)
            step += 1
            rate = speed.update(plan["global_batch_size"])
            bar.update(1)
            if finite:
                bar.set_postfix(loss=f"{mean_loss:.4f}", samples_s=f"{rate:.0f}", refresh=False)
            if finite and (step % cfg.log_every == 0 or step == total_steps or step == self.start_step + 1):
                self.metrics.write({"step": step, "epoch": step // plan["steps_per_epoch"], "loss": mean_loss,
                                    "lr": self.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                                    "samples_per_s": None if math.isnan(rate) else rate,
                                    "time_s": time.time() - started})
            if cfg.val_every and step % cfg.val_every == 0 and step < total_steps:
                _validate(acc, self.model, self.val_set, cfg, self.metrics, step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                self.save_checkpoint(step)
                last_saved = step
        bar.close()
        if cfg.checkpoint_every and last_saved != step and step > self.start_step:
            self.save_checkpoint(step)
        return step, skipped, seen, started

    def finish(self, step: int, skipped: int, seen: list, started: float) -> None:
        """Final validation; the encoder, the MSM model, the config, the summary and the figures."""
        cfg, acc, output = self.config, self.accelerator, Path(self.config.output)
        val = _validate(acc, self.model, self.val_set, cfg, self.metrics, step)
        if cfg.record_indices:
            atomic_write_json(output / "seen_indices" / f"rank-{acc.process_index}.json",
                              {"rank": acc.process_index, "start_step": self.start_step, "steps": seen})
        if acc.is_main_process:
            msm = acc.unwrap_model(self.model)
            atomic_save_pretrained(msm.encoder, output)
            atomic_save_pretrained(msm, output / "msm")
            cfg.to_json(output / CONFIG_FILE, self.resolved)
            probe = probe_encoder(msm.encoder, cfg.probe_dataset, cfg.probe_dataset_options, cfg.probe_bins, cfg.seed,
                                  reference=self.start_encoder)
            if probe:
                self.metrics.write({"step": step, **probe})
            records = read_jsonl(output / METRICS_FILE) if (output / METRICS_FILE).exists() else []
            train_losses = [r["loss"] for r in records if "loss" in r]
            summary = {"steps": step, "resumed_from_step": self.start_step or None, "skipped_nonfinite_steps": skipped,
                       "first_loss": train_losses[0] if train_losses else None,
                       "final_loss": train_losses[-1] if train_losses else None, **val,
                       "val_beats_interpolation": (val["val_mse"] < val["val_mse_interp"]) if val else None,
                       **probe, "wall_time_s_this_process": time.time() - started, "device": str(acc.device),
                       "num_processes": acc.num_processes}
            atomic_write_json(output / SUMMARY_FILE, summary)
            pretrain_figures(msm, self.val_set if len(self.val_set) else self.train_set, output, records, acc.device,
                             cfg.seed, cfg.mask_ratio)
            logger.info("pretraining done: encoder in %s (val masked MSE %s, interpolation %s; Pearson r %s)", output,
                        fmt(val.get("val_mse")), fmt(val.get("val_mse_interp")), fmt(val.get("val_pearson_r")))
        acc.wait_for_everyone()
        acc.end_training()


def pretrain_msm(config: PretrainConfig) -> Path:
    """Run Stage A pretraining as configured; return the output folder (with the final encoder)."""
    config.validate()
    if os.environ.get(RECORD_INDICES_ENV) == "1":
        config = dataclasses.replace(config, record_indices=True)
    output = Path(config.output)
    manager = CheckpointManager(output, config.checkpoints_total_limit)
    accelerator = _make_accelerator(config)
    _check_output(config, manager)
    accelerator.wait_for_everyone()  # every rank has looked before the main one writes anything

    train_set = CorpusDataset(config.corpus, "train", val_fraction=config.val_fraction)
    val_set = CorpusDataset(config.corpus, "val", val_fraction=config.val_fraction)
    plan = _resolve_steps(config, len(train_set), accelerator.num_processes)
    model = _build_model(config, train_set)
    # The probe's untrained twin is this start (a data-driven --patch-init pca included), not a fresh draw.
    start_encoder = copy.deepcopy(model.encoder) if config.probe_dataset else None
    resolved = {**plan, "n_train_windows": len(train_set), "n_val_windows": len(val_set),
                "model": dict(model.config), "n_parameters": sum(p.numel() for p in model.parameters()),
                "n_encoder_parameters": sum(p.numel() for p in model.encoder.parameters())}
    model, optimizer, scheduler = _prepare(accelerator, model, config, plan)
    metrics = JsonlLog(output / METRICS_FILE, enabled=accelerator.is_main_process)
    start_step = _resume(accelerator, manager, config, metrics, plan["total_steps"])
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        config.to_json(output / CONFIG_FILE, resolved)
    accelerator.wait_for_everyone()

    run = _Run(config, accelerator, model, optimizer, scheduler, manager, metrics, plan, train_set, val_set,
               start_step, resolved, start_encoder)
    run.finish(*run.train())
    return output


def _validate(accelerator, model, val_set, config: PretrainConfig, metrics: JsonlLog, step: int) -> dict:
    result: dict = {}
    if accelerator.is_main_process and len(val_set):
        result = evaluate_msm(accelerator.unwrap_model(model), val_set, config.batch_size, config.seed,
                              accelerator.device, config.val_max_batches, autocast=accelerator.autocast)
        metrics.write({"step": step, **result})
    accelerator.wait_for_everyone()
    return result


__all__ = ["PretrainConfig", "pretrain_msm", "evaluate_msm", "masked_pearson_r", "reconstruct_signal"]
