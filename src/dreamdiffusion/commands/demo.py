"""CLI: ``dreamdiffusion demo`` and ``dreamdiffusion ablate`` (thin wrappers over :mod:`dreamdiffusion.experiments.demo`, :mod:`dreamdiffusion.experiments.ablation`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional

import typer

from dreamdiffusion.commands._options import (
    CLIP_GUIDANCE_STEPS,
    CLIP_GUIDANCE_STEPS_HELP,
    NUM_IMAGES,
    POSITIVE,
    SEED,
    STEPS,
    number,
)
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import check_output_folder
from dreamdiffusion.experiments.ablation import AblationConfig, run_ablation
from dreamdiffusion.experiments.demo import DemoConfig, DemoSettings
from dreamdiffusion.experiments.modern import RECIPES, run_recipe
from dreamdiffusion.experiments.pairs_ablation import PairsAblationConfig, run_pairs_ablation
from dreamdiffusion.experiments.settings import STAGE_B_KINDS


def _settings(fast: bool, overrides: dict, ablation: bool = False):
    settings = DemoSettings.fast() if fast else (DemoSettings.ablation() if ablation else DemoSettings())
    return dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def demo_cmd(
    output: Path = typer.Option(..., "--output", help="Run folder: benchmark/, pretrain/, finetune/, evaluate/, "
                                                      "metrics.json, report.md."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Run into a non-empty --output folder (its stages "
                                                              "are replaced)."),
    seed: int = typer.Option(0, "--seed", parser=SEED, help="Seeds the benchmark (brain, subjects, splits), training and sampling."),
    recipe: str = typer.Option("paper", "--recipe", help="paper (MSM + EEG tokens in a fine-tuned base, the "
                                                         "paper's) | modern (contrastive EEG-CLIP alignment -> "
                                                         "predicted image embedding -> IP-Adapter)."),
    fast: bool = typer.Option(False, "--fast", help="A reduced run (seconds to a minute): checks the plumbing, "
                                                    "not the method."),
    pretrain_steps: Optional[int] = typer.Option(None, "--pretrain-steps", parser=POSITIVE,
                                                 help="Stage A steps."),
    finetune_steps: Optional[int] = typer.Option(None, "--finetune-steps", parser=POSITIVE,
                                                 help="Stage B steps."),
    num_images: Optional[int] = typer.Option(None, "--num-images", parser=NUM_IMAGES, help="Samples per test EEG."),
    steps: Optional[int] = typer.Option(None, "--steps", parser=STEPS, help="Sampler steps."),
    limit: Optional[int] = typer.Option(None, "--limit", parser=POSITIVE, help="Score only the first N test EEGs."),
    candidates: Optional[int] = typer.Option(
        None, "--candidates", parser=POSITIVE, help="Best-of-N test images, ranked by CLIP against the EEG's "
                                                    "own prediction (default: the recipe's val-chosen N)."),
    clip_guidance: Optional[float] = typer.Option(
        None, "--clip-guidance", parser=number(0.0, 1.0), help="CLIP guidance of the test images toward the EEG's "
                                                               "own prediction (default: the recipe's)."),
    clip_guidance_steps: Optional[int] = typer.Option(
        None, "--clip-guidance-steps", parser=CLIP_GUIDANCE_STEPS,
        help=CLIP_GUIDANCE_STEPS_HELP + " Default: the recipe's."),
) -> None:
    """Run the whole method on the built-in digits benchmark and write metrics.json and report.md."""
    check_output_folder(output, overwrite)
    if recipe not in RECIPES:
        raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    settings = _settings(fast, {"pretrain_steps": pretrain_steps, "finetune_steps": finetune_steps,
                                "num_images": num_images, "steps": steps, "limit": limit,
                                "candidates": candidates, "modern_candidates": candidates,
                                "clip_guidance": clip_guidance, "modern_clip_guidance": clip_guidance,
                                "clip_guidance_steps": clip_guidance_steps,
                                "modern_clip_guidance_steps": clip_guidance_steps})
    m = run_recipe(DemoConfig(output=str(output), recipe=recipe, seed=seed, settings=settings))
    typer.echo(f"top-1 ({m['n_way']}-way): {m['top1_accuracy']:.3f} (chance {m['chance']:.3f}); "
               f"retrieval top-1/5: {_f(m['retrieval_top1'])}/{_f(m['retrieval_top5'])}; SSIM {m['ssim']:.3f}; "
               f"PCC {m['pcc']:.3f}; judge on real test digits {_f(m.get('judge_accuracy_real'))}; "
               f"{m['timings_s']['total_s']} s -> {output / 'report.md'}")


def ablate_cmd(
    output: Path = typer.Option(..., "--output", help="Folder for ablation.json, ablation.md, ablation.png and runs."),
    seeds: int = typer.Option(3, "--seeds", parser=POSITIVE, help="How many seeds (mean and spread over them)."),
    first_seed: int = typer.Option(
        0, "--first-seed", parser=SEED, help="First seed (several processes can share one --output, each with its own "
                                             "seeds; a later run reuses finished runs made with the same settings)."),
    fast: bool = typer.Option(False, "--fast", help="Reduced step counts (plumbing check)."),
    variant: Optional[List[str]] = typer.Option(None, "--variant", help="Run only these variants (repeatable); "
                                                                        "names as in ablation.md."),
    pretrain_steps: Optional[int] = typer.Option(None, "--pretrain-steps", parser=POSITIVE, help="Stage A steps."),
    finetune_steps: Optional[int] = typer.Option(None, "--finetune-steps", parser=POSITIVE, help="Stage B steps."),
    num_images: Optional[int] = typer.Option(None, "--num-images", parser=NUM_IMAGES, help="Samples per test EEG."),
    limit: Optional[int] = typer.Option(None, "--limit", parser=POSITIVE, help="Score only the first N test EEGs."),
    pairs_fraction: Optional[str] = typer.Option(
        None, "--pairs-fraction", help="Instead of Table 1: MSM vs no MSM at these shares of the train pairs "
                                       "(e.g. 0.1,0.25,1.0; same val and test), beside the baselines."),
    clip_warmup_encoder_learning_rate: Optional[float] = typer.Option(
        None, "--clip-warmup-encoder-learning-rate", parser=number(0.0, 1.0),
        help="The encoder's learning rate in every row's CLIP warm-up (default: the demo's, 0, the encoder held "
             "still; 1e-4: trained, as before 943703a, where the MSM rows were ahead at few pairs)."),
    msm_steps: Optional[int] = typer.Option(
        None, "--msm-steps", parser=POSITIVE,
        help="With --pairs-fraction: Stage A steps of the MSM rows (default 2000; --fast: the fast Stage A)."),
    stage_b: str = typer.Option(
        "demo", "--stage-b", help="demo (every row's Stage B as the demo's) | paper (as the paper's: the tokenizer "
                                  "as Stage A left it, the pooled CLIP head trained on, one rate for every part, no "
                                  "caption contexts; where Stage A's encoder is all Stage B reads the EEG with)."),
) -> None:
    """The structure of the paper's Table 1 on the built-in benchmark: MSM x CLIP x encoder size, mask ratio."""
    settings = _settings(fast, {"pretrain_steps": pretrain_steps, "finetune_steps": finetune_steps,
                                "num_images": num_images, "limit": limit,
                                "clip_warmup_encoder_learning_rate": clip_warmup_encoder_learning_rate}, ablation=True)
    if stage_b not in STAGE_B_KINDS:
        raise ConfigError(f"--stage-b must be one of {', '.join(STAGE_B_KINDS)}, got {stage_b!r}")
    if stage_b == "paper":
        if clip_warmup_encoder_learning_rate is not None:
            raise ConfigError("--clip-warmup-encoder-learning-rate goes with --stage-b demo (the paper's Stage B "
                              "trains the encoder at the one rate of every part)")
        settings = settings.with_paper_stage_b()
    if pairs_fraction is not None:
        _pairs(output, pairs_fraction, seeds, first_seed, settings, msm_steps or (settings.pretrain_steps
                                                                                  if fast else None))
        return
    summary = run_ablation(AblationConfig(output=str(output), seeds=seeds, first_seed=first_seed, settings=settings,
                                          variants=list(variant) if variant else None))
    for row in summary["rows"]:
        typer.echo(f"{row['variant']:<45} top-1 {row['top1_accuracy_mean']:.3f} ± {row['top1_accuracy_std']:.3f}")
    typer.echo(f"-> {output / 'ablation.md'}")


def _pairs(output: Path, fractions: str, seeds: int, first_seed: int, settings, msm_steps: int | None) -> None:
    try:
        values = tuple(float(v) for v in fractions.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"--pairs-fraction must be numbers separated by commas, got {fractions!r}") from None
    config = PairsAblationConfig(output=str(output), fractions=values, seeds=seeds, first_seed=first_seed,
                                 settings=settings)
    if msm_steps is not None:
        config.msm_steps = msm_steps
    summary = run_pairs_ablation(config)
    for row in summary["rows"]:
        typer.echo(f"pairs {row['fraction']:<5g} top-1 MSM {_f(row['msm']['top1_accuracy']['mean'])}, no MSM "
                   f"{_f(row['no_msm']['top1_accuracy']['mean'])}, ridge->lookup "
                   f"{_f(row['baselines']['ridge_class_top1']['mean'])}; within-class MSM "
                   f"{_f(row['msm']['clip_within_class_2way']['mean'])}, no MSM "
                   f"{_f(row['no_msm']['clip_within_class_2way']['mean'])}, ridge->CLIP "
                   f"{_f(row['baselines']['ridge_clip_within_class_2way']['mean'])}")
    typer.echo(f"-> {output / 'pairs_ablation.md'}")


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
    app.command("ablate")(ablate_cmd)
