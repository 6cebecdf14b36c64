"""``dreamdiffusion ablate``: the structure of the paper's Table 1 on the digits benchmark.

{MSM pretraining on, off} x {CLIP supervision on, off} x {encoder "paper-shaped", small} plus mask ratio
{0.25, 0.5, 0.75}, over several seeds; each variant runs the demo's stages
(:mod:`dreamdiffusion.experiments.demo`) with its settings.
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
from dreamdiffusion.core.files import atomic_write_json, atomic_write_text
from dreamdiffusion.core.machine import machine_description
from dreamdiffusion.experiments.demo import (
    METRIC_KEYS,
    DemoConfig,
    DemoSettings,
    build_stage,
    evaluate_stage,
    finetune_stage,
    pretrain_stage,
    stage_a_overrides,
)
from dreamdiffusion.experiments.low_level import low_level_stage
from dreamdiffusion.experiments.modern import align_stage, ip_pipeline_stage, prior_stage
from dreamdiffusion.experiments.report import bar_chart, markdown_table
from dreamdiffusion.models import builtin, eeg_encoder
from dreamdiffusion.models.ip_adapter import resolve_ip_adapter

logger = logging.getLogger(__name__)

# Beside the method's own numbers (evaluate's metrics.json): its images' within-class 2-way, and the baselines
# evaluate computed on the same test EEGs, as (summary key, path in metrics.json). The baselines are the same for
# every variant of a seed (same benchmark, same test EEGs): each seed counts once.
ROW_KEYS = METRIC_KEYS + ("clip_within_class_2way",)
BASELINE_KEYS = {"ridge_class_top1": ("baseline_ridge_class", "top1_accuracy"),
                 "ridge_class_eeg_accuracy": ("baseline_ridge_class", "eeg_accuracy"),
                 "ridge_clip_within_class_2way": ("baseline_ridge_clip", "clip_within_class_2way"),
                 "ridge_clip_retrieval_top1": ("baseline_ridge_clip", "retrieval_top1"),
                 "ridge_clip_retrieval_top5": ("baseline_ridge_clip", "retrieval_top5")}


@dataclass(frozen=True)
class Variant:
    name: str
    pretrain: bool
    clip: bool
    encoder: str  # "paper-shaped" | "small" | "aligned" (the modern recipe's align encoder)
    mask_ratio: float = 0.75
    recipe: str = "paper"  # paper | modern (demo --recipe modern on the same benchmark)


# The encoder sizes of the ablation at CPU scale. The paper contrasts a ViT-L-depth encoder (24 blocks,
# 1024 wide, mlp ratio 1; "297 M") with a small one ("18.3 M"). Here "small" is the `tiny` preset (2 blocks,
# 64 wide, mlp ratio 2) and "paper-shaped" keeps the paper's proportions (mlp ratio 1, 16 x more blocks than
# heads... at 1/16 of the width): the `tiny-paper` preset below, registered at run time if missing.
ENCODER_PRESETS = {"small": "tiny", "paper-shaped": "tiny-paper"}
TINY_PAPER_PRESET = dict(embed_dim=64, depth=8, num_heads=4, mlp_ratio=1.0,
                         decoder_embed_dim=32, decoder_depth=2, decoder_num_heads=4)


MODERN_VARIANT = "modern: align / IP-Adapter"


def ablation_variants() -> list[Variant]:
    """Table 1's rows: the 2 x 2 x 2 grid, then mask ratios 0.25 and 0.5 of the full model (0.75 is in the grid)."""
    rows = []
    for encoder in ("paper-shaped", "small"):
        for pretrain in (True, False):
            for clip in (True, False):
                name = f"{'MSM' if pretrain else 'no MSM'} / {'CLIP' if clip else 'no CLIP'} / {encoder}"
                rows.append(Variant(name, pretrain, clip, encoder))
    for ratio in (0.25, 0.5):
        rows.append(Variant(f"MSM / CLIP / paper-shaped / mask {ratio}", True, True, "paper-shaped", ratio))
    # the other recipe, on the same benchmark and evaluation: contrastive alignment + IP-Adapter, no Stage A/B
    rows.append(Variant(MODERN_VARIANT, False, True, "aligned", recipe="modern"))
    return rows


def _ensure_presets() -> None:
    eeg_encoder.PRESETS.setdefault("tiny-paper", dict(TINY_PAPER_PRESET))


@dataclass
class AblationConfig:
    output: str
    seeds: int = 3  # how many seeds: first_seed .. first_seed + seeds - 1
    first_seed: int = 0  # lets several processes share the seeds of one ablation (each its own range)
    settings: DemoSettings = field(default_factory=DemoSettings.ablation)
    variants: list[str] | None = None  # names to run (None: all)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_ablation(config: AblationConfig) -> dict:
    """Run every variant for every seed; write ``ablation.json``, ``ablation.md`` and ``ablation.png``."""
    _ensure_presets()
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    variants = ablation_variants()
    if config.variants:
        unknown = set(config.variants) - {v.name for v in variants}
        if unknown:
            raise ConfigError(f"unknown ablation variant(s) {sorted(unknown)}")
        variants = [v for v in variants if v.name in config.variants]
    results: dict[str, list[dict]] = {v.name: [] for v in variants}
    components = resolve_components()  # fixed folders: every variant sees the same base, CLIP and judge
    t0 = time.perf_counter()
    reused = 0  # runs read back from an earlier call (their time is not in this call's seconds)
    for seed in range(config.first_seed, config.first_seed + config.seeds):
        seed_dir = out / f"seed{seed}"
        reuse = same_settings(seed_dir, config.settings, components)
        base_cfg = DemoConfig(output=str(seed_dir), seed=seed, settings=config.settings, report=False,
                              base=components["base"], clip=components["clip"],
                              classifier=components["classifier"])
        bench = build_stage(seed_dir, base_cfg)
        encoders: dict[tuple[str, float], Path] = {}
        for i, v in enumerate(variants):
            logger.info("== ablation seed %d, variant %d/%d: %s", seed, i + 1, len(variants), v.name)
            settings = dataclasses.replace(config.settings, encoder_preset=ENCODER_PRESETS.get(v.encoder, config.settings.encoder_preset),
                                           pretrain=v.pretrain, mask_ratio=v.mask_ratio,
                                           clip_weight=1.0 if v.clip else 0.0)
            cfg = dataclasses.replace(base_cfg, settings=settings)
            tag = slug(v.name)
            done = seed_dir / f"evaluate-{tag}" / "metrics.json"
            if reuse and done.is_file():  # finished earlier with the same settings (metrics.json is written last)
                res = json.loads(done.read_text())
                results[v.name].append(run_row(res, seed))
                logger.info("reusing %s", done)
                reused += 1
                continue
            if v.recipe == "modern":
                res = _modern_variant(seed_dir, bench, cfg, tag)
                results[v.name].append(run_row(res, seed))
                continue
            encoder = None
            if v.pretrain:  # one pretraining per (encoder, mask ratio), shared by the CLIP on/off rows
                key = (v.encoder, v.mask_ratio)
                if key not in encoders:
                    encoders[key] = pretrain_stage(seed_dir, bench, cfg, name=f"pretrain-{slug(v.encoder)}-{v.mask_ratio}")
                encoder = encoders[key]
            pipeline = finetune_stage(seed_dir, bench, encoder, cfg, name=f"finetune-{tag}")
            res = evaluate_stage(seed_dir, bench, pipeline, cfg, name=f"evaluate-{tag}", progress=False)
            results[v.name].append(run_row(res, seed))
            shutil.rmtree(Path(pipeline).parent / "checkpoints", ignore_errors=True)
    summary = summarise_ablation(variants, results)
    summary.update({"seeds": config.seeds,
                    "seed_list": list(range(config.first_seed, config.first_seed + config.seeds)),
                    "components": components, "seconds": round(time.perf_counter() - t0, 1), "machine": machine_description(),
                    "runs_reused": reused, "runs_total": len(variants) * config.seeds,
                    "stage_b": config.settings.stage_b_name(),
                    "config": config.to_dict(), "encoders": {
                        "small": stage_a_encoder("tiny", _preset("tiny"), config.settings),
                        "paper-shaped": stage_a_encoder("tiny-paper", TINY_PAPER_PRESET, config.settings)}})
    atomic_write_json(out / "ablation.json", summary)
    atomic_write_text(out / "ablation.md", ablation_markdown(summary))
    rows = summary["rows"]
    bar_chart([r["variant"] for r in rows], [r["top1_accuracy_mean"] for r in rows],
              [r["top1_accuracy_std"] for r in rows], out / "ablation.png",
              ylabel=f"{summary['n_way']}-way top-1 (mean +- sd over seeds)", chance=summary["chance"],
              title="Ablation on the digits benchmark (structure of the paper's Table 1)",
              references={"ridge -> class lookup": summary["baselines"]["ridge_class_top1"]["mean"]})
    # the CLIP head's retrieval beside it: where the images carry little (the paper's Stage B at this scale), it is
    # what still tells the encoders apart
    bar_chart([r["variant"] for r in rows], [r["retrieval_top5_mean"] for r in rows],
              [r["retrieval_top5_std"] for r in rows], out / "ablation_retrieval.png",
              ylabel="retrieval top-5 (mean +- sd over seeds)",
              title="Ablation: retrieval top-5 of the EEG's predicted CLIP embedding among the distinct test images",
              references={"ridge -> CLIP embedding": summary["baselines"]["ridge_clip_retrieval_top5"]["mean"]})
    return summary


def _modern_variant(seed_dir: Path, bench: Path, cfg: DemoConfig, tag: str) -> dict:
    """The modern recipe's stages on this seed's benchmark (the ablation's fixed guidance and test limit; the
    low-level strength, as in the demo, chosen on val)."""
    clip = resolve_ip_adapter(cfg.ip_adapter).image_encoder
    encoder = align_stage(seed_dir, bench, cfg, clip, name=f"align-{tag}")
    prior, _ = prior_stage(bench, encoder, clip, cfg)
    pipeline, latent_fit = ip_pipeline_stage(seed_dir, encoder, cfg, name=f"pipeline-{tag}", prior=prior, bench=bench)
    if latent_fit:
        low_level_stage(seed_dir, bench, pipeline, cfg, cfg.settings.guidance or 1.0, name=f"low_level-{tag}")
    return evaluate_stage(seed_dir, bench, pipeline, cfg, name=f"evaluate-{tag}", progress=False)


def same_settings(seed_dir: Path, settings: DemoSettings, components: dict) -> bool:
    """Whether ``seed_dir`` holds runs made with these settings and components (then they are reused)."""
    marker = seed_dir / "ablation_settings.json"
    # through JSON, as the marker holds it (tuples become lists)
    current = json.loads(json.dumps({"settings": dataclasses.asdict(settings), "components": components}))
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == current:
                return True
        except ValueError:
            pass
    seed_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps(current, indent=2) + "\n")
    return False


def resolve_components() -> dict:
    """The builtin-tiny folders (base, CLIP, judge) and whether they hold trained weights."""
    return {"base": str(builtin.base_path()), "clip": str(builtin.clip_path()),
            "classifier": str(builtin.classifier_path()), "trained": bool(builtin.is_trained())}


def _preset(name: str) -> dict:
    return dict(eeg_encoder.PRESETS[name])


def stage_a_encoder(preset: str, shape: dict, settings: DemoSettings) -> dict:
    """The preset's shape with the decoder and rates Stage A really ran with (the settings override the preset's
    decoder where they set one), so that the report names what was run."""
    return {"preset": preset, **shape, **{k: v for k, v in stage_a_overrides(settings).items() if v is not None}}


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c == "." else "-" for c in text.lower()).strip("-").replace("--", "-")


def metric_at(metrics: dict, path: tuple[str, ...]):
    """``metrics[path[0]][path[1]]...``, None where any level is missing."""
    for key in path:
        metrics = (metrics or {}).get(key)
    return metrics


def run_row(metrics: dict, seed: int) -> dict:
    """What the summary keeps of one run's ``metrics.json``: the method's numbers and the baselines beside them."""
    return ({k: metrics.get(k) for k in ROW_KEYS} | {k: metric_at(metrics, path) for k, path in BASELINE_KEYS.items()}
            | {"seed": seed})


def stats(values) -> dict:
    """Mean, sample sd (0 for one value) and every value, of the values that are not None."""
    v = np.array([x for x in values if x is not None], dtype=float)
    return {"mean": float(v.mean()) if len(v) else None, "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "runs": v.tolist()}


def summarise_ablation(variants: list[Variant], results: dict[str, list[dict]]) -> dict:
    """Mean and sample standard deviation over seeds of each metric, per variant."""
    rows = []
    n_way = chance = None
    for v in variants:
        runs = results[v.name]
        row = {"variant": v.name, "msm_pretraining": v.pretrain, "clip_supervision": v.clip, "encoder": v.encoder,
               "mask_ratio": v.mask_ratio if v.pretrain else None, "n_seeds": len(runs)}
        for key in ("top1_accuracy", "retrieval_top1", "retrieval_top5", "clip_within_class_2way", "ssim", "pcc"):
            st = stats(r.get(key) for r in runs)
            row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_runs"] = st["mean"], st["sd"], st["runs"]
        n_way = runs[0]["n_way"] if runs else n_way
        chance = runs[0]["chance"] if runs else chance
        rows.append(row)
    per_seed: dict = {}  # seed -> the first run's baselines that has them
    for runs in results.values():
        for r in runs:
            if r.get("ridge_class_top1") is not None or r.get("ridge_clip_retrieval_top1") is not None:
                per_seed.setdefault(r.get("seed"), r)
    baselines = {k: stats(r.get(k) for r in per_seed.values()) for k in BASELINE_KEYS}
    return {"rows": rows, "n_way": n_way, "chance": chance, "baselines": baselines}


def ablation_markdown(summary: dict) -> str:
    def pm(row, key):
        m, s = row[f"{key}_mean"], row[f"{key}_std"]
        return "n/a" if m is None else f"{m:.3f} ± {s:.3f}"

    rows = [(r["variant"], r["msm_pretraining"], r["clip_supervision"], r["encoder"],
             "-" if r["mask_ratio"] is None else r["mask_ratio"], pm(r, "top1_accuracy"), pm(r, "retrieval_top1"),
             pm(r, "retrieval_top5"), pm(r, "clip_within_class_2way"), pm(r, "ssim"), r["n_seeds"])
            for r in summary["rows"]]
    base = summary.get("baselines") or {}

    def bm(key):
        st = base.get(key) or {}
        return "-" if st.get("mean") is None else f"{st['mean']:.3f} ± {st['sd']:.3f}"

    n_base = len((base.get("ridge_clip_retrieval_top1") or {}).get("runs", []))
    if n_base:  # the simplest pipelines on the same test EEGs (no Stage A, no Stage B)
        rows.append(("baseline: ridge -> class -> the base's class conditioning", "-", "-", "-", "-",
                     bm("ridge_class_top1"), "-", "-", "-", "-", n_base))
        rows.append(("baseline: ridge -> CLIP image embedding (no image drawn)", "-", "-", "-", "-", "-",
                     bm("ridge_clip_retrieval_top1"), bm("ridge_clip_retrieval_top5"),
                     bm("ridge_clip_within_class_2way"), "-", n_base))
    table = markdown_table(
        ["variant", "MSM", "CLIP", "encoder", "mask", f"top-1 ({summary['n_way']}-way)", "retrieval top-1",
         "retrieval top-5", "CLIP within-class 2-way", "SSIM", "seeds"], rows)
    enc = summary.get("encoders", {})
    return ("# Ablation (structure of DreamDiffusion's Table 1) on the digits benchmark\n\n" + table + "\n\n"
            f"- mean ± sample sd over {summary.get('seeds')} seed(s) (each seed: its own benchmark brain, subjects, "
            f"splits, initialisation and noise); chance = {summary['chance']}\n"
            f"- encoders (with the decoder and encoder rate Stage A ran with): small = {enc.get('small')}, "
            f"paper-shaped = {enc.get('paper-shaped')}\n"
            f"- Stage B: {stage_b_note(summary)}\n"
            f"- machine: {summary.get('machine')}; {seconds_note(summary)}\n")


def stage_b_note(summary: dict) -> str:
    """Which Stage B the rows ran (``ablate --stage-b``), in words."""
    if summary.get("stage_b") == "paper":
        return ("the paper's (`--stage-b paper`: the tokenizer as Stage A left it, the pooled CLIP head trained on, "
                "one rate for every part, no caption contexts, uniform timesteps)")
    return "the demo's (`--stage-b demo`)"


def seconds_note(summary: dict) -> str:
    """How long the call that wrote the summary took, and how many of its runs it read back instead of running
    (their time is not in it: a gathering call over finished runs takes seconds)."""
    note = f"{summary.get('seconds')} s in this call"
    if summary.get("runs_reused"):
        note += (f"; {summary['runs_reused']} of {summary.get('runs_total')} runs read back from earlier calls "
                 "(their time is not in it)")
    return note


__all__ = ["AblationConfig", "run_ablation", "ablation_variants", "summarise_ablation", "ablation_markdown", "Variant",
           "ENCODER_PRESETS", "TINY_PAPER_PRESET", "resolve_components", "MODERN_VARIANT", "BASELINE_KEYS",
           "metric_at", "run_row", "stats", "seconds_note", "stage_b_note"]
