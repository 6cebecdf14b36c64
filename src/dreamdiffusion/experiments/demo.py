"""The whole method on the embedded default, end to end: ``dreamdiffusion demo``.

``run_demo``: build the digits benchmark -> Stage A, masked signal modeling on its unlabeled corpus (tiny encoder)
-> Stage B, fine-tune the ``builtin-tiny`` base with EEG conditioning and CLIP alignment (best step chosen on val)
-> generate for the test split -> evaluate with the independent digit judge -> ``metrics.json`` + ``report.md``.

The ablation (``dreamdiffusion ablate``, the structure of the paper's Table 1) runs these stages per variant:
:mod:`dreamdiffusion.experiments.ablation`; ``report.md`` is written by :mod:`dreamdiffusion.experiments.report`.

Every step count and size lives in :class:`~dreamdiffusion.experiments.settings.DemoSettings`; ``fast`` is the
reduced run the tests use. The numbers were set for a 2-core CPU budget on the val split and the training curves,
never on test scores.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import atomic_write_json
from dreamdiffusion.core.machine import machine_description
from dreamdiffusion.data.synthetic import SyntheticPairs, build_benchmark
from dreamdiffusion.evaluation.evaluate import EvaluateConfig, evaluate
from dreamdiffusion.evaluation.figures import fmt
from dreamdiffusion.evaluation.probe import PROBE_BINS, linear_probe
from dreamdiffusion.evaluation.selection import choose_guidance, distinct_image_items
from dreamdiffusion.experiments.low_level import fit_latent_stage, low_level_stage
from dreamdiffusion.experiments.report import write_demo_report
from dreamdiffusion.experiments.settings import DemoConfig, DemoSettings
from dreamdiffusion.models import builtin, hub
from dreamdiffusion.models.conditioner import load_encoder
from dreamdiffusion.pipeline import DreamDiffusionPipeline, read_generation_defaults, write_generation_defaults
from dreamdiffusion.training.finetune import FinetuneConfig, finetune
from dreamdiffusion.training.pretrain import PretrainConfig, pretrain_msm

logger = logging.getLogger(__name__)

METRIC_KEYS = ("top1_accuracy", "chance", "n_way", "retrieval_top1", "retrieval_top5", "ssim", "pcc")
# evaluate's within-class 2-way and baselines, copied into the demo's metrics.json and report table as they are
BESIDE_KEYS = ("clip_2way", "clip_within_class_2way", "embed_2way", "embed_within_class_2way",
               "ssim_within_class_2way", "pcc_within_class_2way",
               "baseline_ridge_class", "baseline_ridge_class_skipped", "baseline_ridge_clip",
               "baseline_ridge_clip_skipped", "baseline_ridge_clip_margins")


# --------------------------------------------------------------------------------------------------- stages

def _stage(name: str):
    logger.info("== %s", name)
    return time.perf_counter()


def build_stage(out: Path, cfg: DemoConfig) -> Path:
    return build_benchmark(out / "benchmark", seed=cfg.seed, overwrite=False, **cfg.settings.benchmark_params())


def stage_a_overrides(s: DemoSettings) -> dict:
    """The demo's Stage A options beyond the paper's (``PretrainConfig`` fields; None there: the preset's decoder, one
    rate), kept in one place so that ``ablate``'s report names what ``pretrain_stage`` ran."""
    return {"encoder_learning_rate": s.pretrain_encoder_learning_rate,
            "decoder_embed_dim": s.pretrain_decoder_embed_dim, "decoder_depth": s.pretrain_decoder_depth}


def pretrain_stage(out: Path, bench: Path, cfg: DemoConfig, name: str = "pretrain") -> Path:
    s = cfg.settings
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)  # a fresh run (pretrain refuses to overwrite a finished one)
    return pretrain_msm(PretrainConfig(
        corpus=str(bench / "corpus"), output=str(folder), preset=s.encoder_preset, mask_ratio=s.mask_ratio,
        max_steps=s.pretrain_steps, batch_size=s.pretrain_batch_size, learning_rate=s.pretrain_learning_rate,
        warmup_steps=max(1, s.pretrain_steps // 10), checkpoint_every=0, val_every=0, seed=cfg.seed,
        alibi=s.pretrain_alibi, patch_init=s.pretrain_patch_init, block_init=s.pretrain_block_init,
        visible_loss_weight=s.pretrain_visible_loss_weight, final_norm=s.pretrain_final_norm,
        embed_dim=s.encoder_embed_dim, patch_whiten=s.pretrain_patch_whiten,
        freeze_patch_embed=s.pretrain_freeze_patch_embed, **stage_a_overrides(s),
        probe_dataset="synthetic" if s.probe else "",
        probe_dataset_options={"root": str(bench)} if s.probe else {}))


def stage_b_probe(bench: Path, pipeline: Path, cfg: DemoConfig, encoder: Path | None = None) -> dict:
    """Linear probe of the fine-tuned pipeline's EEG encoder on val (beside a random encoder and the raw EEG).

    Stage A's numbers are reused where they would come out the same (same benchmark, same seed, same bins and
    counts; ``encoder``: its folder): the raw EEG's always, the random encoder's where Stage A probed an encoder of
    the same config (Stage B's ``--encoder-norm`` changes it, and with it the fresh draw). Each reuse saves a ridge
    search (seconds on the full benchmark).
    """
    if not cfg.settings.probe:
        return {}
    tuned = load_encoder(Path(pipeline) / "eeg_conditioner")
    stage_a = stage_a_summary(encoder)
    train, val = SyntheticPairs(bench, "train"), SyntheticPairs(bench, "val")
    config = _public_config(tuned)
    same_config = "probe_random_encoder" in stage_a and config is not None and config == _public_config(
        load_encoder(encoder))
    same_raw = ("probe_raw_eeg" in stage_a and stage_a.get("probe_n_bins") == PROBE_BINS
                and (stage_a.get("probe_n_train"), stage_a.get("probe_n_val")) == (len(train), len(val)))
    result = linear_probe(tuned, train, val, n_bins=PROBE_BINS, seed=cfg.seed, baselines=not same_config,
                          raw=not same_raw)
    kept = (["probe_random_encoder"] if same_config else []) + (["probe_raw_eeg"] if same_raw else [])
    return {**result, **{k: stage_a[k] for k in kept}}


def _public_config(model) -> dict | None:
    config = getattr(model, "config", None)
    return None if config is None else {k: v for k, v in config.items() if not k.startswith("_")}


def stage_a_summary(encoder: Path | None) -> dict:
    """Stage A's val numbers beside the reference predictors, and its linear probe (pretrain_summary.json)."""
    path = None if encoder is None else Path(encoder) / "pretrain_summary.json"
    if path is None or not path.is_file():
        return {}
    summary = json.loads(path.read_text())
    keys = [k for k in summary if k.startswith(("val_mse", "val_pearson_r", "probe_"))] + ["val_beats_interpolation"]
    return {k: summary.get(k) for k in keys}


def finetune_stage(out: Path, bench: Path, encoder: Path | None, cfg: DemoConfig, name: str = "finetune") -> Path:
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    pipeline = finetune(stage_b_config(folder, bench, encoder, cfg))
    s = cfg.settings
    if s.class_context and s.class_context_scale != 1:
        # the class context's sampling weight rides with the pipeline: every later draw (the val choices, the test
        # images, generate, app, stream) reads it from generation.json; the guidance here is the val choices' start
        write_generation_defaults(pipeline, guidance_scale=s.select_guidance, num_inference_steps=s.steps,
                                  class_context_scale=s.class_context_scale,
                                  chosen_on="class_context_scale: DemoSettings.class_context_scale (chosen on val)")
    return pipeline


def stage_b_config(folder: Path, bench: Path, encoder: Path | None, cfg: DemoConfig) -> FinetuneConfig:
    """The demo's Stage B as a :class:`FinetuneConfig` (output ``folder``, the benchmark at ``bench``, Stage A's
    ``encoder`` or None for a random one); ``benchmarks/head_val.py`` runs its warm-up alone from it."""
    s = cfg.settings
    # no CLIP supervision (the ablation's "no CLIP" rows) means no CLIP warm-up, and so no caption contexts either
    warmup = s.clip_warmup_steps if s.clip_weight > 0 else 0
    return FinetuneConfig(
        output=str(folder), dataset="synthetic", dataset_options={"root": str(bench)},
        encoder=None if encoder is None else str(encoder), encoder_preset=s.encoder_preset, base=cfg.base,
        clip=cfg.clip, train=s.train, clip_weight=s.clip_weight, align=s.align, align_cosine_weight=s.finetune_align_cosine_weight,
        clip_pool_tokens=s.clip_pool_tokens,
        batch_size=s.finetune_batch_size,
        learning_rate=s.finetune_learning_rate, encoder_learning_rate=s.finetune_encoder_learning_rate,
        unet_learning_rate=s.finetune_unet_learning_rate, lr_scheduler=s.finetune_lr_scheduler, timestep_bias=s.timestep_bias,
        timestep_bias_multiplier=s.timestep_bias_multiplier, timestep_bias_portion=s.timestep_bias_portion,
        select_metric=s.select_metric, select_images=s.select_images, validation_inference_steps=s.select_steps,
        guidance_scale=s.select_guidance,
        clip_warmup_steps=warmup, clip_warmup_learning_rate=s.clip_warmup_learning_rate,
        clip_warmup_encoder_learning_rate=s.clip_warmup_encoder_learning_rate,
        clip_warmup_schedule=s.clip_warmup_schedule, freeze_clip_head=s.freeze_clip_head and bool(warmup),
        clip_head=s.clip_head if warmup else "pool", clip_head_steps=s.clip_head_steps,
        clip_head_within_class_weight=s.clip_head_within_class_weight if warmup else 0.0,
        clip_head_prior=s.clip_head_prior if warmup and s.clip_head != "pool" else 0, clip_head_prior_steps=s.prior_steps,
        tokenizer_init=s.tokenizer_init, encoder_norm=s.encoder_norm, null_init=s.null_init,
        caption_weight=s.caption_weight if warmup else 0.0, clip_context=s.clip_context, class_context=s.class_context,
        max_steps=s.finetune_steps, checkpoint_every=0, train_fraction=s.pairs_fraction,
        checkpoints_total_limit=1, validate_every=s.validate_every, val_limit=s.val_limit, validation_images=0,
        select="best", seed=cfg.seed)


def guidance_stage(out: Path, bench: Path, pipeline: Path, cfg: DemoConfig, name: str = "guidance",
                   known: dict[float, dict] | None = None) -> dict:
    """The test images' guidance scale: fixed by the settings (``DemoSettings.fixed_guidance``), or the best of
    ``guidance_choices`` on val (``known``: val scores already drawn at some scales with the pipeline as it is).

    Writes ``OUTPUT/<name>.json`` (``{"guidance": g, "chosen_on": ..., "records": [...]}``) and returns it.
    """
    s = cfg.settings
    fixed = s.fixed_guidance(cfg.recipe)
    if fixed is not None:
        where = "DemoSettings.guidance" if s.guidance is not None else f"DemoSettings.{cfg.recipe}_guidance"
        result = {"guidance": float(fixed), "chosen_on": f"fixed in the settings ({where})", "records": []}
    else:
        pipe = DreamDiffusionPipeline.from_pretrained(pipeline)
        pipe.set_progress_bar_config(disable=True)
        val = SyntheticPairs(bench, "val")
        items = distinct_image_items(val, s.guidance_val_images)
        clip = hub.load_clip(cfg.clip)
        best, records = choose_guidance(pipe, items, clip.model, clip.processor, s.guidance_choices, s.steps, cfg.seed,
                                        known=known)
        result = {"guidance": best, "chosen_on": f"val: CLIP 2-way identification of images generated for "
                                                 f"{len(items)} distinct val images",
                  "records": records}
    atomic_write_json(out / f"{name}.json", result)
    if s.guidance is None:  # the pipeline carries the demo's settings (val-chosen or the recipe's) to generate, app, stream
        steer = s.steering(cfg.recipe)[1]
        # what the folder already recommends (the low-level strength, chosen on val) stays, and so does where it came from
        earlier = read_generation_defaults(pipeline)
        chosen_on = result["chosen_on"] if fixed is None else "; ".join(
            x for x in (earlier.get("chosen_on"), f"guidance {result['chosen_on']}") if x)
        write_generation_defaults(pipeline, **{**earlier, "guidance_scale": result["guidance"],
                                               "num_inference_steps": s.steps, "chosen_on": chosen_on,
                                               "clip_guidance": steer or None,
                                               "clip_guidance_steps": s.guidance_moves(cfg.recipe) if steer else None,
                                               "steering_clip": cfg.clip if steer else None})
    logger.info("test guidance %.2f (%s)", result["guidance"], result["chosen_on"])
    return result


def evaluate_stage(out: Path, bench: Path, pipeline: Path, cfg: DemoConfig, name: str = "evaluate",
                   progress: bool = True, guidance: float | None = None, baselines: bool = True,
                   split: str = "test") -> dict:
    """``evaluate`` of the pipeline at the demo's settings on the benchmark's ``split`` (the demo: test;
    ``benchmarks/head_val.py --images``: val, for choosing settings)."""
    s = cfg.settings
    guidance = guidance if guidance is not None else (s.guidance if s.guidance is not None else 1.0)
    return evaluate(EvaluateConfig(
        output=str(out / name), model=str(pipeline), dataset="synthetic", dataset_options={"root": str(bench)},
        split=split, classifier=cfg.classifier, clip=cfg.clip, base=cfg.base, n_way=s.n_way, trials=s.trials,
        num_images=s.num_images, steps=s.steps, guidance=guidance, seed=cfg.seed, limit=s.limit, fid=True,
        batch_size=s.eval_batch_size,
        candidates=s.steering(cfg.recipe)[0], clip_guidance=s.steering(cfg.recipe)[1],
        clip_guidance_steps=s.guidance_moves(cfg.recipe),
        baselines=baselines, baseline_train_fraction=s.pairs_fraction,
        overwrite=True),  # the demo owns its run folder: a rerun replaces its evaluation
        progress=progress)


def choose_and_evaluate(out: Path, bench: Path, pipeline: Path, cfg: DemoConfig, low_level: bool, split: str = "test",
                        suffix: str = "", name: str = "evaluate") -> tuple[dict | None, dict, dict]:
    """The demo's last stage for a fine-tuned pipeline of either recipe: the low-level strength (``low_level``: the
    pipeline has its latent decoder) at the val images' guidance, then the test guidance with that start, both
    chosen on val; then ``evaluate`` on ``split`` (``benchmarks/head_val.py --images``: val). Returns
    ``(low-level record or None, guidance record, evaluate's metrics)``; the records land in ``OUTPUT/low_level<suffix>.json``,
    ``guidance<suffix>.json`` and the evaluation in ``OUTPUT/<name>``."""
    strength = (low_level_stage(out, bench, pipeline, cfg, cfg.settings.select_guidance, name=f"low_level{suffix}")
                if low_level else None)
    chosen = guidance_stage(out, bench, pipeline, cfg, name=f"guidance{suffix}", known=drawn_at_guidance(strength))
    return strength, chosen, evaluate_stage(out, bench, pipeline, cfg, name=name, guidance=chosen["guidance"],
                                            split=split)


def drawn_at_guidance(strength: dict | None) -> dict[float, dict]:
    """The strength choice's val scores at the strength it chose, keyed by the guidance it drew them at: the
    guidance choice draws the same val images with the same seed and steps from the pipeline that now carries that
    strength, so the same scores (a generation of the val images saved)."""
    if not strength:
        return {}
    chosen = next(r for r in strength["records"] if r["low_level_strength"] == strength["low_level_strength"])
    return {float(strength["guidance"]): {k: v for k, v in chosen.items()
                                          if k not in ("low_level_strength", "guidance")}}


# --------------------------------------------------------------------------------------------------- the demo

def run_demo(config: DemoConfig) -> dict:
    """Run the whole method; return the metrics (also written to ``OUTPUT/metrics.json``)."""
    if config.settings.n_way < 2:
        raise ConfigError("n_way must be at least 2")
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    t = _stage("1/4 building the benchmark")
    bench = build_stage(out, config)
    timings["benchmark_s"] = time.perf_counter() - t

    encoder = None
    if config.settings.pretrain:
        t = _stage("2/4 Stage A: masked signal modeling on the unlabeled corpus")
        encoder = pretrain_stage(out, bench, config)
        timings["pretrain_s"] = time.perf_counter() - t

    t = _stage("3/4 Stage B: fine-tuning the base with EEG conditioning and CLIP alignment (selection on val)")
    pipeline = finetune_stage(out, bench, encoder, config)
    timings["finetune_s"] = time.perf_counter() - t

    probe_b = stage_b_probe(bench, pipeline, config, encoder)
    t = _stage("4/4 choosing the low-level strength and the guidance scale on val, generating for the test split and "
               "evaluating")
    # Not the paper's: the ridge guess of the image's latents (experiments/low_level.py), trusted as far as val says.
    latent_fit = fit_latent_stage(pipeline, bench, config) if config.settings.low_level else None
    low_level, chosen, result = choose_and_evaluate(out, bench, pipeline, config, bool(latent_fit))
    timings["evaluate_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t_all

    metrics = demo_metrics(result, chosen, bench, config, timings,
                           {"benchmark": str(bench), "encoder": None if encoder is None else str(encoder),
                            "pipeline": str(pipeline), "evaluate": str(out / "evaluate")})
    metrics["recipe"] = "paper"
    metrics["low_level"] = None if low_level is None else {**low_level, "fit": latent_fit}
    metrics["stage_a"] = stage_a_summary(encoder)
    metrics["probe_after_stage_b"] = probe_b
    atomic_write_json(out / "metrics.json", metrics)
    if config.report:
        write_demo_report(out, bench, encoder, pipeline, metrics)
    logger.info("demo done in %.0f s: top-1 %.3f (%d-way, chance %.3f), retrieval top-1 %s, SSIM %.3f, PCC %.3f -> %s",
                timings["total_s"], metrics["top1_accuracy"], metrics["n_way"], metrics["chance"],
                fmt(metrics["retrieval_top1"]), metrics["ssim"], metrics["pcc"], out / "report.md")
    return metrics


def demo_metrics(result: dict, chosen: dict, bench: Path, config: DemoConfig, timings: dict, paths: dict) -> dict:
    """``metrics.json`` of a demo run (either recipe) from ``evaluate``'s result and the guidance choice."""
    metrics = {k: result.get(k) for k in METRIC_KEYS}
    metrics.update({
        "top1_accuracy_max": result.get("top1_accuracy_max"),
        "judge_accuracy_real": result.get("judge_accuracy_real"),
        "generated_label_accuracy": result.get("generated_label_accuracy"),
        "ssim_2way": result.get("ssim_2way"), "pcc_2way": result.get("pcc_2way"),
        "retrieval_n_way": result.get("retrieval_n_way"), "retrieval_chance_top1": result.get("retrieval_chance_top1"),
        "retrieval_chance_top5": result.get("retrieval_chance_top5"),
        "fid": result.get("fid"), "fid_skipped": result.get("fid_skipped"),
        "num_eeg": result.get("num_eeg"), "num_images": result.get("num_images"), "num_trials": result.get("num_trials"),
        "classifier": result.get("classifier"),
        **{k: result.get(k) for k in BESIDE_KEYS if k in result},
        "guidance": chosen["guidance"], "guidance_selection": chosen,
        # the ridge classifier of baseline_ridge_class, alone: how much class information the EEG carries
        "linear_eeg_baseline_test": (result.get("baseline_ridge_class") or {}).get("eeg_accuracy"),
        "lda_eeg_baseline_test": (result.get("baseline_ridge_class") or {}).get("lda_eeg_accuracy"),
        "builtin_trained": _builtin_trained(config),
        "seed": config.seed, "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "machine": machine_description(), "config": config.to_dict(),
        "paths": paths,
    })
    return metrics


def _builtin_trained(config: DemoConfig) -> bool | None:
    """Whether the embedded components are the trained ones (False: random stand-ins in a bare checkout)."""
    if "builtin-tiny" not in (config.base, config.clip, config.classifier):
        return None
    return bool(builtin.is_trained())


__all__ = ["DemoSettings", "DemoConfig", "run_demo", "write_demo_report", "METRIC_KEYS", "build_stage",
           "pretrain_stage", "finetune_stage", "stage_b_config", "guidance_stage", "evaluate_stage",
           "choose_and_evaluate", "drawn_at_guidance", "demo_metrics"]
