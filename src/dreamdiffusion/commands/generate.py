"""CLI: ``dreamdiffusion generate``, a thin wrapper over :func:`dreamdiffusion.generation.generate_images`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

from dreamdiffusion.commands._options import (
    BATCH,
    GUIDANCE,
    NUM_IMAGES,
    ONSET,
    POSITIVE,
    SEED,
    SFREQ,
    STEPS,
    AllowOutsideRoot,
    Candidates,
    ChannelMapping,
    Conditioning,
    DatasetCSV,
    DatasetEEG,
    DatasetImages,
    DatasetRoot,
    DatasetSplitIndex,
    DatasetSplits,
    DatasetSubject,
    IPAdapter,
    IPBase,
    LowLevelStrength,
    ModelClipGuidance,
    ModelClipGuidanceSteps,
    dataset_options,
)
from dreamdiffusion.conditioning import plan_conditioning
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import check_output_folder
from dreamdiffusion.core.quiet import quiet_model_loading
from dreamdiffusion.generation import (
    DTYPES,
    GenerateConfig,
    generate_images,
    load_pipeline,
    sources_from_dataset,
    sources_from_file,
    steering_clip,
)
from dreamdiffusion.pipeline import COMPILE_MODES


def generate_cmd(
    model: Optional[Path] = typer.Option(
        None, "--model", help="DreamDiffusionPipeline folder (or a finetune output folder), or an aligned encoder "
                              "(`dreamdiffusion align` output). Default: the pipeline shipped with this installation."),
    conditioning: Conditioning = "auto",
    base: IPBase = None,
    ip_adapter: IPAdapter = None,
    output: Path = typer.Option(..., "--output", help="Folder for images/, grid.png and manifest.json (written to a "
                                                      "temporary sibling, renamed into place when complete)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --output folder."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Draw from a paired dataset's split."),
    split: str = typer.Option("test", "--split", help="Dataset split (train | val | test)."),
    limit: Optional[int] = typer.Option(None, "--limit", parser=POSITIVE, help="Only the first N EEGs of the split."),
    root: DatasetRoot = None,
    eeg: DatasetEEG = None,
    splits: DatasetSplits = None,
    images: DatasetImages = None,
    subject: DatasetSubject = None,
    split_index: DatasetSplitIndex = None,
    csv: DatasetCSV = None,
    allow_outside_root: AllowOutsideRoot = False,
    channel_mapping: ChannelMapping = None,
    eeg_file: Optional[Path] = typer.Option(None, "--eeg-file", help="A recording (EDF/BDF/FIF/... or .npy)."),
    onset: Optional[List[float]] = typer.Option(None, "--onset", parser=ONSET, help="Window start in seconds (repeatable; default 0)."),
    sfreq: Optional[float] = typer.Option(None, "--sfreq", parser=SFREQ, help="Sampling rate of a .npy recording."),
    num_images: int = typer.Option(5, "--num-images", parser=NUM_IMAGES, help="Samples per EEG (paper: 5)."),
    candidates: Candidates = 1,
    clip_guidance: ModelClipGuidance = None,
    clip_guidance_steps: ModelClipGuidanceSteps = None,
    low_level_strength: LowLevelStrength = None,
    clip: Optional[str] = typer.Option(
        None, "--clip", help="The CLIP that ranks --candidates (default: the one the model was trained against)."),
    steps: Optional[int] = typer.Option(
        None, "--steps", parser=STEPS, help="Sampler steps (paper: 250 with --scheduler pndm). Default: the model's "
                              "generation.json, else 25."),
    guidance: Optional[float] = typer.Option(
        None, "--guidance", parser=GUIDANCE, help="Classifier-free guidance scale (1: none, as the paper). Default: the model's "
                                 "recommended scale (generation.json), else 1."),
    seed: int = typer.Option(0, "--seed", parser=SEED, help="Seed of the sampling noise."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="dpm | pndm | ddim | euler (default: dpm)."),
    batch_size: int = typer.Option(8, "--batch-size", parser=BATCH, help="EEG windows per pipeline call."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: cuda if present)."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | float16 | bfloat16 (half types: GPU)."),
    compile: str = typer.Option(
        "none", "--compile",
        help="Fast path: none | default | reduce-overhead (CUDA graphs; best for small batches) | max-autotune. "
             "Sets channels-last and torch.compile's the UNet; the first batch of each size compiles (slow)."),
) -> None:
    """Generate images from EEG with a fine-tuned DreamDiffusionPipeline."""
    # Longer than 80 lines only by its option declarations (one Typer parameter per flag).
    quiet_model_loading()
    if (dataset is None) == (eeg_file is None):
        raise ConfigError("give either --dataset (with --split) or --eeg-file")
    # Everything that can be checked without the model is checked first: a bad flag, --output or --model
    # must not cost a pipeline load.
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if compile not in COMPILE_MODES:
        raise ConfigError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
    check_output_folder(output, overwrite)
    plan = plan_conditioning(model, conditioning, base, ip_adapter)
    if candidates > 1 or (clip_guidance or 0) > 0:
        steering_clip(clip, plan.folder)  # refused in one line before the pipeline is loaded
    if eeg_file is not None and not Path(eeg_file).exists():
        raise ConfigError("EEG file not found", eeg_file)
    pipe = load_pipeline(plan, scheduler, device=device, dtype=dtype, compile=compile)
    if dataset is not None:
        options = dataset_options(dataset, root=root, eeg=eeg, splits=splits, images=images, subject=subject,
                                  split_index=split_index, csv=csv, allow_outside_root=allow_outside_root,
                                  channel_mapping=channel_mapping)
        sources = sources_from_dataset(dataset, split, options, limit)
    else:
        spec = pipe.input_spec()
        if channel_mapping:
            spec = replace(spec, channel_mapping=channel_mapping)
        sources = sources_from_file(eeg_file, spec, list(onset or [0.0]), sfreq)
    config = GenerateConfig(model=str(plan.folder), output=str(output), num_images=num_images, steps=steps,
                            guidance=guidance, seed=seed, scheduler=scheduler, batch_size=batch_size,
                            compile=compile, overwrite=overwrite, conditioning=conditioning, base=plan.base,
                            ip_adapter=plan.ip_adapter, candidates=candidates, clip=clip,
                            clip_guidance=clip_guidance, low_level_strength=low_level_strength,
                            clip_guidance_steps=clip_guidance_steps)
    manifest = generate_images(config, sources, pipe=pipe)
    src = manifest["settings_source"]
    route = manifest["conditioning"]["route"] + (" (built on the fly)" if plan.built else "")
    typer.echo(f"{sum(len(e['images']) for e in manifest['items'])} images -> {output} "
               f"(conditioning {route}; guidance {manifest['guidance']:g}: {src['guidance']}; "
               f"steps {manifest['steps']}: {src['steps']})")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_cmd)
