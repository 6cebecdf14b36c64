"""CLI: ``dreamdiffusion evaluate`` (a thin wrapper over :func:`dreamdiffusion.evaluation.evaluate.evaluate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamdiffusion.commands._options import (
    BATCH,
    GUIDANCE,
    NUM_IMAGES,
    POSITIVE,
    SEED,
    STEPS,
    AllowOutsideRoot,
    Candidates,
    ChannelMapping,
    ClipGuidanceScale,
    ClipGuidanceSteps,
    Conditioning,
    DatasetCSV,
    DatasetEEG,
    DatasetImages,
    DatasetRoot,
    DatasetSplitIndex,
    DatasetSplits,
    DatasetSubject,
    IPAdapter,
    dataset_options,
    integer,
)
from dreamdiffusion.core.files import atomic_write_text, check_output_folder, staged_folder
from dreamdiffusion.evaluation.evaluate import EvaluateConfig, evaluate
from dreamdiffusion.evaluation.figures import margins_text
from dreamdiffusion.evaluation.retrieval_table import retrieval_table


def evaluate_cmd(
    output: Path = typer.Option(..., "--output", help="Folder for metrics.json, metrics.md, samples.png, samples/ "
                                                      "(written to a temporary sibling, renamed when complete)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --output folder."),
    model: Optional[Path] = typer.Option(None, "--model", help="DreamDiffusionPipeline folder (or finetune output), "
                                                               "or an aligned encoder (`dreamdiffusion align` output)."),
    conditioning: Conditioning = "auto",
    ip_adapter: IPAdapter = None,
    dataset: str = typer.Option("synthetic", "--dataset", help="Paired dataset: synthetic, eegcvpr40, things-eeg2, folder."),
    split: str = typer.Option("test", "--split", help="Split to score (model selection used val; this reads test)."),
    root: DatasetRoot = None,
    eeg: DatasetEEG = None,
    splits: DatasetSplits = None,
    images: DatasetImages = None,
    subject: DatasetSubject = None,
    split_index: DatasetSplitIndex = None,
    csv: DatasetCSV = None,
    allow_outside_root: AllowOutsideRoot = False,
    channel_mapping: ChannelMapping = None,
    generated: Optional[Path] = typer.Option(
        None, "--generated", help="Score images already generated (a `generate` or earlier `evaluate` output folder) "
                                  "instead of generating."),
    classifier: Optional[str] = typer.Option(
        None, "--classifier", help="Judge: transformers image-classification hub id or folder; default builtin-tiny "
                                   "on synthetic, microsoft/beit-large-patch16-512 (ImageNet-1k) otherwise."),
    clip: Optional[str] = typer.Option(None, "--clip", help="CLIP for retrieval (default: the one used in finetune)."),
    n_way: int = typer.Option(50, "--n-way", parser=integer(2, 100_000), help="n-way of the top-1 accuracy (capped at the judge's classes)."),
    trials: int = typer.Option(50, "--trials", parser=integer(1, 100_000), help="Random trials per generated image."),
    num_images: int = typer.Option(5, "--num-images", parser=NUM_IMAGES, help="Samples per EEG."),
    candidates: Candidates = 1,
    clip_guidance: ClipGuidanceScale = 0.0,
    clip_guidance_steps: ClipGuidanceSteps = 1,
    steps: int = typer.Option(25, "--steps", parser=STEPS, help="Sampler steps."),
    guidance: float = typer.Option(1.0, "--guidance", parser=GUIDANCE, help="Classifier-free guidance (1 = none, as the paper)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="dpm | pndm | ddim | euler (default: the pipeline's)."),
    seed: int = typer.Option(0, "--seed", parser=SEED, help="Seeds the sampling noise and the n-way trials."),
    limit: Optional[int] = typer.Option(None, "--limit", parser=POSITIVE, help="Score only the first N EEGs of the split."),
    classes: Optional[str] = typer.Option(
        None, "--classes", help="Comma-separated labels or WordNet ids to score only (Brain2Image grid: "
                                "n02690373,n03590841,n02510455)."),
    batch_size: int = typer.Option(16, "--batch-size", parser=BATCH, help="EEGs per generation batch."),
    retrieval_n_way: Optional[int] = typer.Option(
        None, "--retrieval-n-way", parser=integer(2, 1_000_000), help="Candidates per retrieval trial (default: all test images, e.g. 200)."),
    no_fid: bool = typer.Option(False, "--no-fid", help="Skip FID/IS even if Inception weights are on disk."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default: CUDA when present)."),
    baselines: bool = typer.Option(
        True, "--baselines/--no-baselines",
        help="Fit the ridge baselines on the train split and score them beside the method."),
    base: Optional[str] = typer.Option(
        None, "--base", help="Base of the class-lookup baseline, and of an ip-adapter pipeline built on the fly "
                             "(default: the one the model draws with: fine-tuned from, else builtin-tiny)."),
    baseline_train_limit: Optional[int] = typer.Option(
        None, "--baseline-train-limit", parser=POSITIVE, help="Fit the baselines on the first N train pairs only."),
    align_run: Optional[list[Path]] = typer.Option(
        None, "--align-run", help="Instead of scoring a model: the retrieval table (intra-subject, leave-one-"
                                  "subject-out, mean over subjects) of these `align --report-test` runs (repeat)."),
    baseline_train_fraction: float = typer.Option(
        1.0, "--baseline-train-fraction",
        help="Fit the baselines on this share of the train images (as finetune --train-fraction, same --seed)."),
) -> None:
    """Score a model on a held-out split: n-way top-1, retrieval top-1/5, SSIM, PCC (+ FID/IS if local)."""
    # Longer than 80 lines only by its option declarations (one Typer parameter per flag).
    check_output_folder(output, overwrite)  # before any dataset or model is loaded
    if align_run:
        _retrieval_table(align_run, output, overwrite)
        return

    options = dataset_options(dataset, root=root, eeg=eeg, splits=splits, images=images, subject=subject,
                              split_index=split_index, csv=csv, allow_outside_root=allow_outside_root,
                              channel_mapping=channel_mapping)
    config = EvaluateConfig(
        output=str(output), model=None if model is None else str(model), conditioning=conditioning,
        ip_adapter=ip_adapter, dataset=dataset, dataset_options=options,
        split=split, generated=None if generated is None else str(generated), classifier=classifier, clip=clip,
        n_way=n_way, trials=trials, num_images=num_images, candidates=candidates, clip_guidance=clip_guidance,
        clip_guidance_steps=clip_guidance_steps,
        steps=steps, guidance=guidance, scheduler=scheduler,
        seed=seed, limit=limit, batch_size=batch_size, retrieval_n_way=retrieval_n_way, fid=not no_fid, device=device,
        baselines=baselines, base=base, baseline_train_limit=baseline_train_limit, overwrite=overwrite,
        baseline_train_fraction=baseline_train_fraction,
        classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None)
    result = evaluate(config)
    typer.echo(f"top-1 ({result['n_way']}-way): {result['top1_accuracy']:.3f} (chance {result['chance']:.3f}); "
               f"retrieval top-1/5 ({result.get('retrieval_n_way')}-way): {_f(result.get('retrieval_top1'))}/"
               f"{_f(result.get('retrieval_top5'))}; "
               f"SSIM {result['ssim']:.3f}; PCC {result['pcc']:.3f}; "
               f"CLIP within-class 2-way {_f(result.get('clip_within_class_2way'))} -> {output / 'metrics.json'}")
    for name in ("baseline_ridge_class", "baseline_ridge_clip"):
        b = result.get(name)
        if b:
            typer.echo(f"{name}: top-1 {_f(b.get('top1_accuracy'))}; retrieval top-1/5 "
                       f"{_f(b.get('retrieval_top1'))}/{_f(b.get('retrieval_top5'))}; "
                       f"CLIP within-class 2-way {_f(b.get('clip_within_class_2way'))}")
    margins = result.get("baseline_ridge_clip_margins") or {}
    if margins:
        typer.echo("method - baseline_ridge_clip (95 % bootstrap interval over the test images): "
                   + margins_text(margins))


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _retrieval_table(runs: list[Path], output: Path, overwrite: bool) -> None:
    table = retrieval_table(runs)
    with staged_folder(output, overwrite) as tmp:  # the one output-folder policy
        atomic_write_text(tmp / "retrieval_table.md", table)
    typer.echo(table + f"-> {output / 'retrieval_table.md'}")
