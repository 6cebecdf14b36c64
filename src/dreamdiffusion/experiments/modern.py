"""The modern recipe on the built-in benchmark: ``dreamdiffusion demo --recipe modern``.

The recipe of the field's leaders since 2024, beside the paper's on the same data and the same evaluation:

1. the benchmark (the same builder, seed and settings as the paper's demo);
2. ``align``: an EEG encoder + projector trained contrastively (symmetric InfoNCE) against the frozen CLIP image
   embeddings of the IP-Adapter's image encoder (:mod:`dreamdiffusion.training.align`), best val step kept;
3. the pipeline: the aligned encoder's predicted CLIP image embedding -> the base's IP-Adapter
   (:meth:`DreamDiffusionPipeline.from_ip_adapter`); no diffusion training at all;
4. guidance chosen on val, test images generated and scored by ``evaluate`` (judge n-way, retrieval,
   within-class 2-way, SSIM/PCC) exactly as the paper's demo is.

:func:`run_recipe` runs either recipe from a :class:`~dreamdiffusion.experiments.demo.DemoConfig`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import atomic_write_json
from dreamdiffusion.experiments.demo import (
    DemoConfig,
    build_stage,
    demo_metrics,
    evaluate_stage,
    guidance_stage,
    run_demo,
)
from dreamdiffusion.experiments.report import write_modern_report
from dreamdiffusion.models import hub
from dreamdiffusion.models.encoders import load_aligned_encoder
from dreamdiffusion.models.image_conditioner import ImageEmbeddingConditioner
from dreamdiffusion.models.ip_adapter import resolve_ip_adapter
from dreamdiffusion.pipeline import DreamDiffusionPipeline
from dreamdiffusion.training.align import AlignConfig, align

logger = logging.getLogger(__name__)

RECIPES = ("paper", "modern")


def align_stage(out: Path, bench: Path, cfg: DemoConfig, clip: str, name: str = "align") -> Path:
    """Contrastive EEG -> CLIP alignment against ``clip`` (the IP-Adapter's image encoder)."""
    s = cfg.settings
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)  # align refuses to overwrite an earlier run
    return align(AlignConfig(
        output=str(folder), dataset="synthetic", dataset_options={"root": str(bench)}, clip=clip,
        encoder_arch=s.align_arch, channels=s.align_channels, time_pool=s.align_time_pool,
        batch_size=s.align_batch_size, learning_rate=s.align_learning_rate, max_steps=s.align_steps,
        warmup_steps=max(1, s.align_steps // 20), validate_every=s.align_validate_every, seed=cfg.seed))


def ip_pipeline_stage(out: Path, encoder: Path, cfg: DemoConfig, name: str = "pipeline") -> Path:
    """The ``ip-adapter`` pipeline around the aligned encoder, saved to ``OUTPUT/<name>``."""
    aligned = load_aligned_encoder(encoder)
    unet_cfg = hub.load_base(cfg.base).unet.config
    cond = ImageEmbeddingConditioner.from_encoder(aligned, unet_cfg.cross_attention_dim)
    pipe = DreamDiffusionPipeline.from_ip_adapter(cond, cfg.base, cfg.ip_adapter,
                                                  ip_adapter_scale=cfg.settings.ip_adapter_scale,
                                                  preprocessing={"dataset": "synthetic"})
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    pipe.save_pretrained(folder)
    return folder


def run_modern(config: DemoConfig) -> dict:
    """Benchmark -> align -> IP-Adapter pipeline -> val-chosen guidance -> evaluate; returns the metrics."""
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    logger.info("== 1/4 building the benchmark")
    t = time.perf_counter()
    bench = build_stage(out, config)
    timings["benchmark_s"] = time.perf_counter() - t

    logger.info("== 2/4 align: contrastive EEG -> CLIP image embedding (best val retrieval step kept)")
    t = time.perf_counter()
    clip = config.clip if config.clip != "builtin-tiny" else resolve_ip_adapter(config.ip_adapter).image_encoder
    encoder = align_stage(out, bench, config, clip)
    timings["align_s"] = time.perf_counter() - t

    logger.info("== 3/4 the IP-Adapter pipeline around the aligned encoder")
    t = time.perf_counter()
    pipeline = ip_pipeline_stage(out, encoder, config)
    timings["pipeline_s"] = time.perf_counter() - t

    logger.info("== 4/4 choosing the guidance scale on val, generating for the test split and evaluating")
    t = time.perf_counter()
    chosen = guidance_stage(out, bench, pipeline, config)
    result = evaluate_stage(out, bench, pipeline, config, guidance=chosen["guidance"])
    timings["evaluate_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_all

    metrics = demo_metrics(result, chosen, bench, config, timings,
                           {"benchmark": str(bench), "encoder": str(encoder), "pipeline": str(pipeline),
                            "evaluate": str(out / "evaluate")})
    metrics["recipe"] = "modern"
    metrics["align_summary"] = _read_json(Path(encoder) / "align_summary.json")
    atomic_write_json(out / "metrics.json", metrics)
    if config.report:
        write_modern_report(out, bench, encoder, pipeline, metrics)
    logger.info("modern demo done in %.0f s: top-1 %.3f (%d-way, chance %.3f), retrieval top-1 %s -> %s",
                timings["total_s"], metrics["top1_accuracy"], metrics["n_way"], metrics["chance"],
                metrics["retrieval_top1"], out)
    return metrics


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def run_recipe(config: DemoConfig) -> dict:
    """``config.recipe``: ``paper`` (:func:`~dreamdiffusion.experiments.demo.run_demo`) or ``modern``."""
    if config.recipe not in RECIPES:
        raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}, got {config.recipe!r}")
    return run_modern(config) if config.recipe == "modern" else run_demo(config)


__all__ = ["RECIPES", "run_recipe", "run_modern", "align_stage", "ip_pipeline_stage"]
