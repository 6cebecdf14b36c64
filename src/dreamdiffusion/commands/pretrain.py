"""CLI: ``dreamdiffusion pretrain``, a thin wrapper over :func:`dreamdiffusion.training.pretrain.pretrain_msm`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models.encoders import ARCHS
from dreamdiffusion.training.pretrain import PretrainConfig, pretrain_msm

_D = PretrainConfig()  # defaults shown in --help come from the dataclass, the one place they live


def pretrain(
    corpus: Path = typer.Option(..., "--corpus", help="Corpus folder built by `dreamdiffusion data build-corpus`."),
    output: Path = typer.Option(..., "--output", help="Run folder: final encoder, msm/, checkpoints/, logs, figures."),
    preset: str = typer.Option(_D.preset, "--preset", help="Model size: paper | small | tiny."),
    encoder_arch: str = typer.Option("msm", "--encoder-arch",
                                     help="msm only: masked signal modeling trains the paper's token transformer."),
    mask_ratio: float = typer.Option(_D.mask_ratio, "--mask-ratio", help="Share of time tokens masked."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Passes over the training windows (default 500)."),
    batch_size: int = typer.Option(_D.batch_size, "--batch-size", help="Windows per process per step."),
    learning_rate: float = typer.Option(_D.learning_rate, "--learning-rate", help="Peak learning rate."),
    encoder_learning_rate: Optional[float] = typer.Option(
        None, "--encoder-learning-rate",
        help="The encoder's own peak rate, the decoder at --learning-rate (default: one rate, the paper's)."),
    warmup_steps: Optional[int] = typer.Option(None, "--warmup-steps",
                                               help="Linear warm-up steps (default: 8% of the run, as the paper)."),
    mixed_precision: str = typer.Option(_D.mixed_precision, "--mixed-precision", help="no | fp16 | bf16."),
    gradient_checkpointing: bool = typer.Option(_D.gradient_checkpointing, "--gradient-checkpointing",
                                                help="Recompute blocks in backward to save memory."),
    norm_target: bool = typer.Option(_D.norm_target, "--norm-target", help="Reconstruct per-token normalised targets."),
    predict_stats: bool = typer.Option(_D.predict_stats, "--predict-stats",
                                       help="With --norm-target: also predict each token's mean and log-std."),
    mask_span: int = typer.Option(_D.mask_span, "--mask-span", help="Mask runs of N neighbouring tokens together."),
    alibi: bool = typer.Option(_D.alibi, "--alibi", help="ALiBi distance bias in the attention (a locality prior)."),
    patch_init: str = typer.Option(_D.patch_init, "--patch-init",
                                   help="Start of the patch embedding: xavier (the paper's) | orthogonal (orthonormal "
                                        "spatial filters of each patch's mean) | pca (the corpus' whitened principal "
                                        "components as those filters)."),
    patch_whiten: bool = typer.Option(_D.patch_whiten, "--patch-whiten/--no-patch-whiten",
                                      help="With --patch-init pca: each component scaled to unit variance (on) or "
                                           "of unit norm, the EEG's own scales kept (off; for --no-final-norm)."),
    freeze_patch_embed: bool = typer.Option(_D.freeze_patch_embed, "--freeze-patch-embed",
                                            help="Keep the patch embedding at its start through Stage A (the blocks "
                                                 "and the decoder train)."),
    block_init: str = typer.Option(_D.block_init, "--block-init",
                                   help="Start of the transformer blocks: xavier (the paper's) | zero (each block "
                                        "starts as the identity)."),
    visible_loss_weight: float = typer.Option(_D.visible_loss_weight, "--visible-loss-weight",
                                              help="Also rebuild the visible tokens, at this weight beside the masked "
                                                   "ones (0: the paper's, masked tokens only)."),
    final_norm: bool = typer.Option(_D.final_norm, "--final-norm/--no-final-norm",
                                    help="The encoder's last LayerNorm (on: the paper's); off hands Stage B the "
                                         "blocks' output as it is."),
    embed_dim: Optional[int] = typer.Option(None, "--embed-dim", help="Token width instead of the preset's."),
    decoder_embed_dim: Optional[int] = typer.Option(None, "--decoder-embed-dim",
                                                    help="The MSM decoder's width instead of the preset's."),
    decoder_depth: Optional[int] = typer.Option(None, "--decoder-depth",
                                                help="The MSM decoder's blocks instead of the preset's."),
    probe_dataset: str = typer.Option("", "--probe-dataset",
                                      help="Paired dataset (e.g. synthetic) for a linear probe of the encoder at the end."),
    probe_root: Optional[Path] = typer.Option(None, "--probe-root", help="Root folder of the probe dataset."),
    probe_bins: int = typer.Option(_D.probe_bins, "--probe-bins", help="Time bins of the probe's features."),
    checkpoint_every: int = typer.Option(_D.checkpoint_every, "--checkpoint-every",
                                         help="Save a resumable checkpoint every N steps (0: none)."),
    checkpoints_total_limit: Optional[int] = typer.Option(None, "--checkpoints-total-limit",
                                                          help="Keep only the newest K checkpoints."),
    resume: bool = typer.Option(_D.resume, "--resume", help="Continue from the newest complete checkpoint in --output."),
    seed: int = typer.Option(_D.seed, "--seed", help="Seed of init, data order and masks."),
    num_workers: int = typer.Option(_D.num_workers, "--num-workers", help="DataLoader worker processes."),
    val_every: int = typer.Option(_D.val_every, "--val-every", help="Validate every N steps (0: only at the end)."),
    skip_nan_batches: bool = typer.Option(_D.skip_nan_batches, "--skip-nan-batches",
                                          help="Skip a step with a NaN/Inf loss instead of stopping."),
    compile: bool = typer.Option(_D.compile, "--compile", help="torch.compile the model."),
    log_every: int = typer.Option(_D.log_every, "--log-every", help="Write a metrics record every N steps."),
) -> None:
    """Stage A: pretrain the EEG encoder by masked signal modeling (on Accelerate; `accelerate launch` for many GPUs)."""
    # Longer than 80 lines only by its option declarations (one Typer parameter per flag).
    if encoder_arch != "msm":
        # MSM masks and reconstructs the transformer's patch tokens; the conv nets and the linear encoder have no
        # such tokens to mask, and the field trains them from scratch against CLIP instead.
        if encoder_arch not in ARCHS:
            raise ConfigError(f"--encoder-arch must be one of {', '.join(ARCHS)}, got {encoder_arch!r} "
                              "(and pretrain takes msm only)")
        raise ConfigError(f"--encoder-arch {encoder_arch}: masked signal modeling needs the token transformer (msm); "
                          f"train {encoder_arch} with `dreamdiffusion align --encoder-arch {encoder_arch}`")
    config = PretrainConfig(
        corpus=str(corpus), output=str(output), preset=preset, mask_ratio=mask_ratio, norm_target=norm_target,
        max_steps=max_steps, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        warmup_steps=warmup_steps, mixed_precision=mixed_precision, gradient_checkpointing=gradient_checkpointing,
        checkpoint_every=checkpoint_every, checkpoints_total_limit=checkpoints_total_limit, resume=resume,
        seed=seed, num_workers=num_workers, val_every=val_every, skip_nan_batches=skip_nan_batches,
        compile=compile, log_every=log_every, predict_stats=predict_stats,
        mask_span=mask_span, alibi=alibi, patch_init=patch_init, block_init=block_init, patch_whiten=patch_whiten,
        freeze_patch_embed=freeze_patch_embed,
        visible_loss_weight=visible_loss_weight, final_norm=final_norm, embed_dim=embed_dim,
        decoder_embed_dim=decoder_embed_dim, decoder_depth=decoder_depth, encoder_learning_rate=encoder_learning_rate,
        probe_dataset=probe_dataset, probe_bins=probe_bins,
        probe_dataset_options={"root": str(probe_root)} if probe_root else {},
    )
    out = pretrain_msm(config)
    typer.echo(str(out))


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain)
