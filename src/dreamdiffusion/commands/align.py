"""CLI: ``dreamdiffusion align``, a thin wrapper over :func:`dreamdiffusion.training.align.align`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.quiet import quiet_model_loading
from dreamdiffusion.training.align import AlignConfig, align

_D = AlignConfig()  # defaults shown in --help come from the dataclass


def align_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Paired dataset: synthetic | things-eeg2 | eegcvpr40 | folder."),
    output: Path = typer.Option(..., "--output", help="Folder of the aligned encoder (+ align_summary.json)."),
    clip: str = typer.Option(..., "--clip", help="Frozen CLIP vision model: local folder, hub id, or builtin-tiny."),
    encoder: Optional[str] = typer.Option(None, "--encoder",
                                          help="Pretrained MSM encoder folder (from `pretrain`); none = random init."),
    encoder_arch: str = typer.Option(_D.encoder_arch, "--encoder-arch",
                                     help="msm (the paper's) | shallow | eegnet | conformer | atcnet | linear (UBP)."),
    encoder_preset: str = typer.Option(_D.encoder_preset, "--encoder-preset", help="msm size: paper | small | tiny."),
    channels: Optional[str] = typer.Option(None, "--channels",
                                           help="Channels the encoder sees: names (O1,Oz,O2) or a set (ubp17)."),
    time_pool: int = typer.Option(_D.time_pool, "--time-pool", help="Average-pool the window over N samples."),
    spatial_filters: int = typer.Option(_D.spatial_filters, "--spatial-filters",
                                        help="linear: mix the channels into K virtual channels first (0: off)."),
    proj_dropout: float = typer.Option(_D.proj_dropout, "--proj-dropout", help="Dropout inside the projector."),
    root: DatasetRoot = None,
    eeg: DatasetEEG = None,
    splits: DatasetSplits = None,
    images: DatasetImages = None,
    subject: DatasetSubject = None,
    split_index: DatasetSplitIndex = None,
    csv: DatasetCSV = None,
    allow_outside_root: AllowOutsideRoot = False,
    channel_mapping: ChannelMapping = None,
    subjects: Optional[str] = typer.Option(None, "--subjects",
                                           help="THINGS-EEG2: subjects to train and test on, e.g. 1,2,3 (intra-subject)."),
    leave_out_subject: Optional[int] = typer.Option(
        None, "--leave-out-subject", help="THINGS-EEG2: test on this subject, train on every other one."),
    average_repetitions: Optional[bool] = typer.Option(
        None, "--average-repetitions/--each-repetition",
        help="THINGS-EEG2 train/val: average an image's repetitions or train on each (test is always averaged)."),
    time_window: Optional[str] = typer.Option(None, "--time-window",
                                              help="THINGS-EEG2: TMIN,TMAX seconds of the epoch to keep (0,1.0)."),
    n_times: Optional[int] = typer.Option(None, "--n-times",
                                          help="Samples per window the data are stretched to (250 for 1 s at 250 Hz)."),
    batch_size: int = typer.Option(_D.batch_size, "--batch-size", help="Pairs per step (the in-batch negatives)."),
    learning_rate: float = typer.Option(_D.learning_rate, "--learning-rate", help="AdamW peak learning rate."),
    weight_decay: float = typer.Option(_D.weight_decay, "--weight-decay", help="AdamW weight decay."),
    warmup_steps: int = typer.Option(_D.warmup_steps, "--warmup-steps", help="Linear warm-up, then cosine decay."),
    max_steps: int = typer.Option(_D.max_steps, "--max-steps", help="Optimizer steps."),
    target_blur: float = typer.Option(_D.target_blur, "--target-blur",
                                      help="Blur the image before CLIP: Gaussian sigma as a share of its width (0: off)."),
    target_blur_adaptive: bool = typer.Option(False, "--target-blur-adaptive",
                                              help="UBP's uncertainty-aware blur: per trial 0.5x, 1x or 1.5x the sigma."),
    target_views: int = typer.Option(_D.target_views, "--target-views",
                                     help="Average the CLIP embeddings of N degraded views (NeuroBridge; 0: off)."),
    trial_mix: float = typer.Option(_D.trial_mix, "--trial-mix",
                                    help="Share of train trials averaged with another trial of the same image."),
    cosine_weight: float = typer.Option(_D.cosine_weight, "--cosine-weight",
                                        help="Weight of 1 - cos to the own image beside InfoNCE (0: InfoNCE alone)."),
    init_ridge: bool = typer.Option(_D.init_ridge, "--init-ridge/--no-init-ridge",
                                    help="linear: start from the ridge map EEG -> CLIP target, then train."),
    baseline: bool = typer.Option(_D.baseline, "--baseline/--no-baseline",
                                  help="Score the ridge EEG -> CLIP baseline beside the encoder."),
    validate_every: int = typer.Option(_D.validate_every, "--validate-every", help="Val retrieval every N steps."),
    select: str = typer.Option(_D.select, "--select", help="Final weights: best (val top-1, then top-5) | last."),
    report_test: bool = typer.Option(False, "--report-test",
                                     help="Score the test split once after the choice (never used to choose)."),
    seed: int = typer.Option(_D.seed, "--seed", help="Seeds init, data order and the target views."),
) -> None:
    """Contrastive EEG-CLIP alignment: train an EEG encoder + projector against frozen CLIP image embeddings."""
    quiet_model_loading()
    options = dataset_options(dataset, root=root, eeg=eeg, splits=splits, images=images, subject=subject,
                              split_index=split_index, csv=csv, allow_outside_root=allow_outside_root,
                              channel_mapping=channel_mapping, subjects=_int_list(subjects, "--subjects"),
                              leave_out_subject=leave_out_subject, average_repetitions=average_repetitions,
                              n_times=n_times, time_window=_float_pair(time_window, "--time-window"))
    config = AlignConfig(
        output=str(output), dataset=dataset, dataset_options=options, clip=clip,
        encoder=None if encoder in (None, "", "none") else encoder, encoder_arch=encoder_arch,
        encoder_preset=encoder_preset, channels=channels, time_pool=time_pool, batch_size=batch_size,
        learning_rate=learning_rate, weight_decay=weight_decay, warmup_steps=warmup_steps, max_steps=max_steps,
        target_blur=target_blur, target_blur_adaptive=target_blur_adaptive, target_views=target_views,
        validate_every=validate_every, select=select, report_test=report_test, seed=seed,
        spatial_filters=spatial_filters, proj_dropout=proj_dropout, trial_mix=trial_mix, cosine_weight=cosine_weight,
        init_ridge=init_ridge, baseline=baseline)
    typer.echo(str(align(config)))


def _int_list(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be integers separated by commas, got {text!r}") from None


def _float_pair(text: str | None, flag: str) -> list[float] | None:
    if text is None:
        return None
    try:
        pair = [float(v) for v in text.split(",")]
    except ValueError:
        pair = []
    if len(pair) != 2 or not pair[0] < pair[1]:
        raise ConfigError(f"{flag} must be TMIN,TMAX seconds with TMIN < TMAX, got {text!r}")
    return pair


def register(app: typer.Typer) -> None:
    app.command("align")(align_cmd)
