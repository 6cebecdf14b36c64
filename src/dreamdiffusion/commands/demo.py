"""CLI: ``dreamdiffusion demo`` and ``dreamdiffusion ablate`` (thin wrappers over :mod:`dreamdiffusion.experiments.demo`, :mod:`dreamdiffusion.experiments.ablation`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import List, Optional

import typer

from dreamdiffusion.commands._options import NUM_IMAGES, POSITIVE, SEED, STEPS
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import check_output_folder
from dreamdiffusion.experiments.ablation import AblationConfig, run_ablation
from dreamdiffusion.experiments.demo import DemoConfig, DemoSettings
from dreamdiffusion.experiments.modern import RECIPES, run_recipe


def _settings(fast: bool, overrides: dict, ablation: bool = False):
    settings = DemoSettings.fast() if fast else (DemoSettings.ablation() if ablation else DemoSettings())
    return dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def register(app: typer.Typer) -> None:
    @app.command("demo")
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
    ) -> None:
        """Run the whole method on the built-in digits benchmark and write metrics.json and report.md."""
        check_output_folder(output, overwrite)
        if recipe not in RECIPES:
            raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
        settings = _settings(fast, {"pretrain_steps": pretrain_steps, "finetune_steps": finetune_steps,
                                    "num_images": num_images, "steps": steps, "limit": limit})
        m = run_recipe(DemoConfig(output=str(output), recipe=recipe, seed=seed, settings=settings))
        typer.echo(f"top-1 ({m['n_way']}-way): {m['top1_accuracy']:.3f} (chance {m['chance']:.3f}); "
                   f"retrieval top-1/5: {_f(m['retrieval_top1'])}/{_f(m['retrieval_top5'])}; SSIM {m['ssim']:.3f}; "
                   f"PCC {m['pcc']:.3f}; judge on real test digits {_f(m.get('judge_accuracy_real'))}; "
                   f"{m['timings_s']['total_s']} s -> {output / 'report.md'}")

    @app.command("ablate")
    def ablate_cmd(
        output: Path = typer.Option(..., "--output", help="Folder for ablation.json, ablation.md, ablation.png and runs."),
        seeds: int = typer.Option(3, "--seeds", help="How many seeds (mean and spread over them)."),
        first_seed: int = typer.Option(0, "--first-seed", help="First seed (several processes can share one "
                                                               "--output, each with its own seeds; a later run "
                                                               "reuses finished runs made with the same settings)."),
        fast: bool = typer.Option(False, "--fast", help="Reduced step counts (plumbing check)."),
        variant: Optional[List[str]] = typer.Option(None, "--variant", help="Run only these variants (repeatable); "
                                                                            "names as in ablation.md."),
        pretrain_steps: Optional[int] = typer.Option(None, "--pretrain-steps", help="Stage A steps."),
        finetune_steps: Optional[int] = typer.Option(None, "--finetune-steps", help="Stage B steps."),
        num_images: Optional[int] = typer.Option(None, "--num-images", help="Samples per test EEG."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Score only the first N test EEGs."),
    ) -> None:
        """The structure of the paper's Table 1 on the built-in benchmark: MSM x CLIP x encoder size, mask ratio."""
        if seeds < 1:
            raise ConfigError("--seeds must be at least 1")
        settings = _settings(fast, {"pretrain_steps": pretrain_steps, "finetune_steps": finetune_steps,
                                    "num_images": num_images, "limit": limit}, ablation=True)
        summary = run_ablation(AblationConfig(output=str(output), seeds=seeds, first_seed=first_seed, settings=settings,
                                              variants=list(variant) if variant else None))
        for row in summary["rows"]:
            typer.echo(f"{row['variant']:<45} top-1 {row['top1_accuracy_mean']:.3f} ± {row['top1_accuracy_std']:.3f}")
        typer.echo(f"-> {output / 'ablation.md'}")


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
