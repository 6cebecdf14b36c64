"""``dreamdiffusion ablate --pairs-fraction 0.1,0.25,1.0``: does Stage A help when EEG-image pairs are few?

DreamDiffusion's claim is that masked signal modeling on plentiful unlabeled EEG helps most where pairs are
scarce. Here, on the digits benchmark, for each seed: one Stage A run on the unlabeled corpus, long enough to
converge (``msm_steps``; the demo's own Stage A is shorter), then for each pairs fraction ``f`` Stage B on ``f`` of
the train images (all their trials; the same val and test, :func:`dreamdiffusion.data.pairs.keep_fraction_of_images`)
from that encoder (MSM) and from a random one (no MSM), each evaluated on the test split. The baselines are
fitted on the same ``f`` of the train pairs (once per fraction and seed: they do not depend on Stage A).

Outputs: ``pairs_ablation.json`` (every run, mean and sample sd over seeds), ``pairs_ablation.md`` (the table) and
``pairs_ablation.png`` (n-way top-1 and CLIP within-class 2-way against the fraction, with and without MSM, beside
the baselines and chance).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import atomic_write_json, atomic_write_text, save_figure
from dreamdiffusion.core.machine import machine_description
from dreamdiffusion.evaluation.figures import headless_pyplot, markdown_table
from dreamdiffusion.experiments.ablation import (
    BASELINE_KEYS,
    metric_at,
    resolve_components,
    same_settings,
    seconds_note,
    slug,
    stage_b_note,
    stats,
)
from dreamdiffusion.experiments.demo import (
    DemoConfig,
    DemoSettings,
    build_stage,
    evaluate_stage,
    finetune_stage,
    pretrain_stage,
)

logger = logging.getLogger(__name__)

# (summary key, where it is in evaluate's metrics.json): the method's numbers; the baselines' are ablate's
# BASELINE_KEYS
METHOD_KEYS = {"top1_accuracy": ("top1_accuracy",), "clip_within_class_2way": ("clip_within_class_2way",),
               "retrieval_top5": ("retrieval_top5",), "pcc_within_class_2way": ("pcc_within_class_2way",)}


@dataclass
class PairsAblationConfig:
    output: str
    fractions: tuple[float, ...] = (0.1, 0.25, 1.0)  # shares of the train images Stage B sees
    seeds: int = 2  # first_seed .. first_seed + seeds - 1
    first_seed: int = 0
    msm_steps: int = 2000  # Stage A steps of the MSM rows (val Pearson r still rose from 1,000 to 2,000 steps)
    settings: DemoSettings = field(default_factory=DemoSettings.ablation)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _run_variant(seed_dir: Path, bench: Path, encoder: Path | None, cfg: DemoConfig, tag: str,
                 baselines: bool) -> dict:
    pipeline = finetune_stage(seed_dir, bench, encoder, cfg, name=f"finetune-{tag}")
    res = evaluate_stage(seed_dir, bench, pipeline, cfg, name=f"evaluate-{tag}", progress=False, baselines=baselines)
    shutil.rmtree(Path(pipeline).parent / "checkpoints", ignore_errors=True)
    return res


def _run_seed(config: PairsAblationConfig, seed: int, components: dict, runs: list[dict]) -> None:
    """Every (fraction, MSM on/off) run of one seed, appended to ``runs``; finished runs with the same settings
    (``seed_dir/ablation_settings.json``) are read back instead of rerun."""
    seed_dir = Path(config.output) / f"seed{seed}"
    marker = dataclasses.replace(config.settings, pretrain_steps=config.msm_steps)
    reuse = same_settings(seed_dir, marker, components)
    base_cfg = DemoConfig(output=str(seed_dir), seed=seed, settings=config.settings, report=False,
                          base=components["base"], clip=components["clip"], classifier=components["classifier"])
    bench = build_stage(seed_dir, base_cfg)
    encoder = None
    for fraction in sorted(config.fractions):
        for msm in (True, False):
            tag = slug(f"{'msm' if msm else 'no-msm'}-pairs-{fraction:g}")
            done = seed_dir / f"evaluate-{tag}" / "metrics.json"
            settings = dataclasses.replace(config.settings, pretrain=msm, pairs_fraction=float(fraction),
                                           pretrain_steps=config.msm_steps)
            cfg = dataclasses.replace(base_cfg, settings=settings)
            was_done = reuse and done.is_file()  # finished by an earlier call with the same settings
            if was_done:
                res = json.loads(done.read_text())
                logger.info("reusing %s", done)
            else:
                if msm and encoder is None:  # one converged Stage A per seed, shared by every fraction
                    encoder = pretrain_stage(seed_dir, bench, cfg, name="pretrain-msm")
                logger.info("== pairs ablation seed %d: %s", seed, tag)
                res = _run_variant(seed_dir, bench, encoder if msm else None, cfg, tag, baselines=msm)
            row = {"seed": seed, "fraction": float(fraction), "msm": msm, "reused": was_done, "n_way": res.get("n_way"),
                   "chance": res.get("chance"), "retrieval_chance_top5": res.get("retrieval_chance_top5")}
            row.update({k: metric_at(res, path) for k, path in {**METHOD_KEYS, **BASELINE_KEYS}.items()})
            runs.append(row)
    summary = seed_dir / "pretrain-msm" / "pretrain_summary.json"
    if summary.is_file():
        runs.append({"seed": seed, "stage_a": json.loads(summary.read_text())})


def summarise_pairs(runs: list[dict], fractions) -> dict:
    """Per fraction: mean, sample sd and every seed's value of each metric, with and without MSM, and baselines."""
    rows = []
    scored = [r for r in runs if "fraction" in r]
    for f in sorted(fractions):
        row: dict = {"fraction": float(f)}
        for msm, name in ((True, "msm"), (False, "no_msm")):
            sel = [r for r in scored if r["fraction"] == float(f) and r["msm"] is msm]
            row[name] = {k: stats(r[k] for r in sel) for k in METHOD_KEYS}
            row[name]["seeds"] = [r["seed"] for r in sel]
        base = [r for r in scored if r["fraction"] == float(f) and r["msm"] is True]
        row["baselines"] = {k: stats(r[k] for r in base) for k in BASELINE_KEYS}
        rows.append(row)
    first = scored[0] if scored else {}
    return {"rows": rows, "n_way": first.get("n_way"), "chance": first.get("chance"),
            "stage_a": [r for r in runs if "stage_a" in r]}


def run_pairs_ablation(config: PairsAblationConfig) -> dict:
    """Run every seed; write ``pairs_ablation.json``, ``.md`` and ``.png``; return the summary."""
    if not config.fractions or any(not 0.0 < f <= 1.0 for f in config.fractions):
        raise ConfigError(f"--pairs-fraction values must be in (0, 1], got {list(config.fractions)}")
    if config.seeds < 1 or config.msm_steps < 1:
        raise ConfigError("--seeds and the MSM steps must be at least 1")
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    components = resolve_components()
    t0 = time.perf_counter()
    runs: list[dict] = []
    for seed in range(config.first_seed, config.first_seed + config.seeds):
        _run_seed(config, seed, components, runs)
    summary = summarise_pairs(runs, config.fractions)
    scored = [r for r in runs if "fraction" in r]
    summary.update({"runs": scored, "seconds": round(time.perf_counter() - t0, 1),
                    "runs_reused": sum(bool(r.get("reused")) for r in scored), "runs_total": len(scored),
                    "machine": machine_description(), "components": components, "config": config.to_dict(),
                    "stage_b": config.settings.stage_b_name()})
    atomic_write_json(out / "pairs_ablation.json", summary)
    atomic_write_text(out / "pairs_ablation.md", pairs_markdown(summary))
    pairs_figure(summary, out / "pairs_ablation.png")
    return summary


def _pm(stat: dict) -> str:
    return "n/a" if stat["mean"] is None else f"{stat['mean']:.3f} ± {stat['sd']:.3f}"


def pairs_markdown(summary: dict) -> str:
    rows = [(f"{r['fraction']:g}", _pm(r["msm"]["top1_accuracy"]), _pm(r["no_msm"]["top1_accuracy"]),
             _pm(r["baselines"]["ridge_class_top1"]), _pm(r["msm"]["clip_within_class_2way"]),
             _pm(r["no_msm"]["clip_within_class_2way"]), _pm(r["baselines"]["ridge_clip_within_class_2way"]),
             _pm(r["msm"]["retrieval_top5"]), _pm(r["no_msm"]["retrieval_top5"]),
             _pm(r["baselines"]["ridge_clip_retrieval_top5"])) for r in summary["rows"]]
    table = markdown_table(["pairs", "top-1 MSM", "top-1 no MSM", "top-1 ridge->lookup", "within-class MSM",
                            "within-class no MSM", "within-class ridge->CLIP", "ret. top-5 MSM", "ret. top-5 no MSM",
                            "ret. top-5 ridge->CLIP"], rows)
    cfg = summary.get("config", {})
    seeds = sorted({r["seed"] for r in summary.get("runs", [])})
    return ("# Does Stage A help when pairs are few? (digits benchmark)\n\n" + table + "\n\n"
            f"- mean ± sample sd over seeds {seeds}; top-1 is {summary.get('n_way')}-way (chance "
            f"{summary.get('chance')}); within-class = CLIP 2-way within the own class (chance 0.5)\n"
            f"- pairs = share of the train images Stage B and the baselines saw (all their trials); val and test whole\n"
            f"- MSM rows: Stage A {cfg.get('msm_steps')} steps on the unlabeled corpus, one run per seed\n"
            f"- Stage B: {stage_b_note(summary)}\n"
            f"- machine: {summary.get('machine')}; {seconds_note(summary)}\n")


def pairs_figure(summary: dict, path) -> Path:
    """Three panels against the pairs fraction: n-way top-1, CLIP within-class 2-way and retrieval top-5 (the CLIP
    head's prediction: where the encoder shows when the images do not); MSM, no MSM, baselines, chance."""
    plt = headless_pyplot()
    rows = summary["rows"]
    x = [r["fraction"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    runs = summary.get("runs") or [{}]
    panels = ((axes[0], "top1_accuracy", "ridge_class_top1", "ridge -> class lookup", summary.get("chance"),
               f"{summary.get('n_way')}-way top-1"),
              (axes[1], "clip_within_class_2way", "ridge_clip_within_class_2way", "ridge -> CLIP embedding", 0.5,
               "CLIP 2-way within class"),
              (axes[2], "retrieval_top5", "ridge_clip_retrieval_top5", "ridge -> CLIP embedding",
               runs[0].get("retrieval_chance_top5"), "retrieval top-5 (distinct test images)"))
    for ax, key, base_key, base_name, chance, ylabel in panels:
        for name, label, color in (("msm", "MSM (Stage A)", "#4C72B0"), ("no_msm", "no MSM", "#DD8452")):
            m = [r[name][key]["mean"] for r in rows]
            ax.errorbar(x, [np.nan if v is None else v for v in m], yerr=[r[name][key]["sd"] for r in rows],
                        marker="o", capsize=3, label=label, color=color)
        b = [r["baselines"][base_key]["mean"] for r in rows]
        ax.errorbar(x, [np.nan if v is None else v for v in b], yerr=[r["baselines"][base_key]["sd"] for r in rows],
                    ls="--", marker="s", capsize=3, label=base_name, color="#55A868")
        if chance is not None:
            ax.axhline(chance, ls=":", color="gray", lw=1, label=f"chance ({chance:.2f})")
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(x)
        ax.set_xticklabels([f"{v:g}" for v in x])
        ax.set_xlabel("share of the train pairs")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    # the spread goes in the title: in each y label it ran past the panel's height into the title
    fig.suptitle("Stage A with few pairs (digits benchmark; mean ± sd over seeds)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["PairsAblationConfig", "run_pairs_ablation", "summarise_pairs", "pairs_markdown", "pairs_figure"]
