"""CLI: ``dreamdiffusion finetune``, a thin wrapper over :func:`dreamdiffusion.training.finetune.finetune`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from dreamdiffusion.commands._options import (
    AllowOutsideRoot,
    ChannelMapping,
    DatasetCSV,
    DatasetEEG,
    DatasetImages,
    DatasetRoot,
    DatasetSplitIndex,
    DatasetSplits,
    DatasetSubject,
    dataset_options,
)
from dreamdiffusion.core.quiet import quiet_model_loading
from dreamdiffusion.training.finetune import FinetuneConfig, finetune

_D = FinetuneConfig()  # defaults shown in --help come from the dataclass


def finetune_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Paired dataset: eegcvpr40 | things-eeg2 | folder | synthetic."),
    output: Path = typer.Option(..., "--output", help="Run folder: pipeline/, checkpoints/, metrics.jsonl, loss.png."),
    base: str = typer.Option(..., "--base", help="Stable Diffusion: local folder, hub id, or builtin-tiny."),
    clip: str = typer.Option(..., "--clip", help="CLIP vision model: local folder, hub id, or builtin-tiny."),
    encoder: str | None = typer.Option(None, "--encoder",
                                          help="Pretrained EEG encoder folder (from `pretrain`); none = random init."),
    encoder_preset: str = typer.Option(_D.encoder_preset, "--encoder-preset",
                                       help="Encoder size when --encoder is none: paper | small | tiny."),
    encoder_arch: str | None = typer.Option(
        None, "--encoder-arch", help="msm (the paper's, default) | shallow | eegnet | conformer | atcnet | linear; "
                                     "with --encoder: the folder's."),
    root: DatasetRoot = None,
    eeg: DatasetEEG = None,
    splits: DatasetSplits = None,
    images: DatasetImages = None,
    subject: DatasetSubject = None,
    split_index: DatasetSplitIndex = None,
    csv: DatasetCSV = None,
    allow_outside_root: AllowOutsideRoot = False,
    channel_mapping: ChannelMapping = None,
    train: str = typer.Option(_D.train, "--train", help="What trains: paper (encoder+attn2+norm2) | lora | encoder."),
    clip_weight: float = typer.Option(_D.clip_weight, "--clip-weight", help="Weight of the CLIP alignment loss."),
    align: str = typer.Option(_D.align, "--align",
                              help="CLIP-alignment loss: cosine (1 - cos, the paper's) | contrastive (InfoNCE)."),
    align_cosine_weight: float = typer.Option(_D.align_cosine_weight, "--align-cosine-weight",
                                              help="With --align contrastive: + this x (1 - cos) beside InfoNCE."),
    cond_dropout: float = typer.Option(_D.cond_dropout, "--cond-dropout",
                                       help="Share of samples trained with the null EEG (enables --guidance)."),
    time_conditioning: bool = typer.Option(_D.time_conditioning, "--time-conditioning/--no-time-conditioning",
                                           help="Add the pooled EEG context to the timestep embedding (paper)."),
    clip_pool_tokens: int = typer.Option(_D.clip_pool_tokens, "--clip-pool-tokens",
                                         help="Token mixtures the CLIP head reads (1: the paper's)."),
    timestep_bias: str = typer.Option(_D.timestep_bias, "--timestep-bias",
                                      help="Training timesteps: none (uniform, paper) | later (noisier more often) | earlier."),
    timestep_bias_multiplier: float = typer.Option(_D.timestep_bias_multiplier, "--timestep-bias-multiplier",
                                                   help="How much more often the biased timesteps are drawn."),
    timestep_bias_portion: float = typer.Option(_D.timestep_bias_portion, "--timestep-bias-portion",
                                                help="Share of the schedule that is biased."),
    resolution: int | None = typer.Option(None, "--resolution", help="Image size (default: the base's, SD 1.5: 512)."),
    batch_size: int = typer.Option(_D.batch_size, "--batch-size", help="Pairs per process per micro-batch."),
    learning_rate: float = typer.Option(_D.learning_rate, "--learning-rate", help="AdamW learning rate (constant)."),
    gradient_accumulation_steps: int = typer.Option(_D.gradient_accumulation_steps, "--gradient-accumulation-steps"),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing", help="Trade compute for memory."),
    mixed_precision: str = typer.Option(_D.mixed_precision, "--mixed-precision", help="no | fp16 | bf16."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Optimizer steps (overrides --epochs)."),
    epochs: int = typer.Option(_D.epochs, "--epochs", help="Passes over the train split."),
    lora_rank: int = typer.Option(_D.lora_rank, "--lora-rank", help="LoRA rank (--train lora)."),
    checkpoint_every: int = typer.Option(_D.checkpoint_every, "--checkpoint-every",
                                         help="Resumable checkpoint every N steps (0: only at the end)."),
    checkpoints_total_limit: int | None = typer.Option(_D.checkpoints_total_limit, "--checkpoints-total-limit",
                                                          help="Keep only the newest K checkpoints."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest complete checkpoint in --output."),
    seed: int = typer.Option(_D.seed, "--seed", help="Seeds init, data order, noise, timesteps, dropout, crops."),
    validate_every: int = typer.Option(_D.validate_every, "--validate-every",
                                       help="Validate on the val split every N steps (0: only at the end)."),
    validation_images: int = typer.Option(_D.validation_images, "--validation-images",
                                          help="Val EEGs drawn at each validation."),
    select: str = typer.Option(_D.select, "--select", help="Final weights: best (on --select-metric) | last."),
    select_metric: str = typer.Option(
        _D.select_metric, "--select-metric",
        help="What best means: loss | mse | gen_clip (val images generated and compared with the truths in CLIP space)."),
    select_images: int = typer.Option(_D.select_images, "--select-images", help="Val EEGs generated for gen_clip."),
    val_limit: int | None = typer.Option(_D.val_limit, "--val-limit", help="Val pairs per validation (loss, cosine)."),
    train_fraction: float = typer.Option(_D.train_fraction, "--train-fraction",
                                         help="Train on this share of the train images (all their trials; seeded)."),
    guidance_scale: float = typer.Option(_D.guidance_scale, "--guidance-scale",
                                         help="Guidance of the validation images (and of gen_clip)."),
    validation_steps: int = typer.Option(_D.validation_inference_steps, "--validation-steps",
                                         help="Sampler steps of the validation images (and of gen_clip)."),
    encoder_learning_rate: float | None = typer.Option(
        None, "--encoder-learning-rate", help="Learning rate of the EEG encoder (default: --learning-rate; 0: frozen after the CLIP warm-up)."),
    unet_learning_rate: float | None = typer.Option(
        None, "--unet-learning-rate", help="Learning rate of the trained UNet weights (default: --learning-rate)."),
    lr_scheduler: str = typer.Option(_D.lr_scheduler, "--lr-scheduler",
                                     help="The joint phase's learning rate over its steps: any diffusers schedule "
                                          "(constant, cosine, linear, ...; cosine and linear reach 0 at the last step)."),
    clip_warmup_steps: int = typer.Option(_D.clip_warmup_steps, "--clip-warmup-steps",
                                          help="Steps of encoder + CLIP head on the CLIP loss alone first (0: off)."),
    clip_warmup_learning_rate: float | None = typer.Option(None, "--clip-warmup-learning-rate",
                                                              help="Learning rate of the warm-up (default: --learning-rate)."),
    clip_warmup_encoder_learning_rate: float | None = typer.Option(
        None, "--clip-warmup-encoder-learning-rate",
        help="The encoder's learning rate in the warm-up (default: the warm-up's; 0: kept as Stage A left it)."),
    clip_warmup_schedule: str = typer.Option(_D.clip_warmup_schedule, "--clip-warmup-schedule",
                                             help="The warm-up's learning rate over its steps: constant | cosine "
                                                  "(decays to 0 by its last step)."),
    freeze_clip_head: bool = typer.Option(
        _D.freeze_clip_head, "--freeze-clip-head/--no-freeze-clip-head",
        help="Keep the CLIP head as the warm-up left it (its best val-cosine step) through the joint phase, whose CLIP "
             "loss then trains the encoder alone (off: the paper's, the head trains on). Needs --clip-warmup-steps."),
    clip_head: str = typer.Option(
        _D.clip_head, "--clip-head",
        help="The CLIP head after the warm-up: pool (the pooled tokens + Linear it trained, the paper's) | filters (a "
             "new low-rank head fitted on the frozen encoder's tokens with InfoNCE + (1 - cos) from a ridge start) | eeg (the "
             "same head fitted on the EEG window itself, beside the encoder, which still makes the context)."),
    clip_head_filters: int = typer.Option(_D.clip_head_filters, "--clip-head-filters",
                                          help="--clip-head filters|eeg: learned mixtures of the token features "
                                               "(eeg: of the channels)."),
    clip_head_bins: int = typer.Option(_D.clip_head_bins, "--clip-head-bins",
                                       help="--clip-head filters|eeg: time bins the tokens (eeg: the samples) "
                                            "are averaged into."),
    clip_head_steps: int = typer.Option(_D.clip_head_steps, "--clip-head-steps",
                                        help="--clip-head filters|eeg: its training steps (batch 256)."),
    clip_head_within_class_weight: float = typer.Option(
        _D.clip_head_within_class_weight, "--clip-head-within-class-weight",
        help="--clip-head filters|eeg: + this x InfoNCE among the batch's images of the own class only (needs "
             "labels; 0: off)."),
    clip_head_prior: int = typer.Option(
        _D.clip_head_prior, "--clip-head-prior", metavar="HIDDEN",
        help="--clip-head filters|eeg: then fit an MLP prior (this hidden width) from the head's train predictions to "
             "their images' CLIP embeddings, and read the head through it where it raises the val CLIP cosine (0: off)."),
    clip_head_prior_steps: int = typer.Option(_D.clip_head_prior_steps, "--clip-head-prior-steps",
                                              help="--clip-head-prior: its training steps (batch 256)."),
    tokenizer_init: str = typer.Option(
        _D.tokenizer_init, "--tokenizer-init",
        help="Start of the transformer's tokenizer: pretrained (as Stage A left it, the paper) | ridge (the leading "
             "spatial filters of the ridge map binned train EEG -> CLIP image embedding)."),
    encoder_norm: str = typer.Option(
        _D.encoder_norm, "--encoder-norm",
        help="The encoder's last norm in Stage B: pretrained (as Stage A trained it) | layernorm (a fresh LayerNorm "
             "where Stage A trained without one, `pretrain --no-final-norm`) | affine (a fresh per-feature affine map "
             "set to centre the train EEG's tokens at unit spread: scaled as a LayerNorm's output, but linear)."),
    caption_weight: float = typer.Option(
        _D.caption_weight, "--caption-weight",
        help="In the CLIP warm-up, also pull the token mapper's context toward the base's own context for the paired "
             "image's label ('a photo of a LABEL' through its text encoder; a class-conditional base's class "
             "embedding), at this weight beside the CLIP loss (0: off, the paper). Needs --clip-warmup-steps."),
    clip_context: bool = typer.Option(
        _D.clip_context, "--clip-context/--no-clip-context",
        help="Add a linear map of the CLIP head's prediction to every context token (starts at zero; off: the "
             "paper's context, the token mapper alone)."),
    class_context: bool = typer.Option(
        _D.class_context, "--class-context/--no-class-context",
        help="Add the class context: a shrinkage LDA fitted on the train EEG (time-binned means) reads each EEG's "
             "class posterior, and the base's own context of each class ('a photo of a LABEL'; a class-conditional "
             "base's class embedding), weighted by it, joins the mapped context. Needs labelled pairs (off: the paper)."),
    null_init: str = typer.Option(
        _D.null_init, "--null-init",
        help="Start of the null context (condition dropout, guidance): random (small noise) | base (the base's own "
             "context for the empty prompt)."),
    skip_nonfinite: bool = typer.Option(False, "--skip-nonfinite", help="Skip NaN/Inf-loss batches instead of stopping."),
    num_workers: int = typer.Option(_D.num_workers, "--num-workers", help="DataLoader worker processes."),
) -> None:
    """Stage B: fine-tune Stable Diffusion on EEG-image pairs with CLIP alignment (Accelerate)."""
    # Longer than 80 lines only by its option declarations (one Typer parameter per flag); the body is 10.
    given = dict(locals())
    quiet_model_loading()
    options = dataset_options(dataset, root=root, eeg=eeg, splits=splits, images=images, subject=subject,
                              split_index=split_index, csv=csv, allow_outside_root=allow_outside_root,
                              channel_mapping=channel_mapping)
    # options named as their FinetuneConfig field go through as they are; the others are set here
    special = dict(output=str(output), dataset_options=options, lora_alpha=lora_rank,
                   encoder=None if encoder in (None, "", "none") else encoder, validation_inference_steps=validation_steps)
    same_name = {f.name for f in dataclasses.fields(FinetuneConfig)} & set(given) - set(special)
    config = FinetuneConfig(**{k: given[k] for k in same_name}, **special)
    typer.echo(str(finetune(config)))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_cmd)
