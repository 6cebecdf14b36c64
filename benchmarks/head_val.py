"""The paper recipe's CLIP head after Stage B's warm-up, scored on val beside the ridge map: the harness behind the
CLIP-head comparisons on val in docs/finetune.md.

    python benchmarks/head_val.py --seed 1 --output runs/head_val
    python benchmarks/head_val.py --seed 1 --output runs/head_val --set clip_pool_tokens=32 --set align=contrastive

Builds (or reuses) the demo's benchmark and Stage A for the seed under ``OUTPUT/seed-S``, runs Stage B's setup as
the demo configures it (``experiments.demo.stage_b_config``: the ridge start of the tokenizer, the CLIP warm-up that
keeps its best val-cosine step) without the joint phase, and scores the head's prediction for every val EEG:
retrieval top-1 / top-5 among the distinct val images, CLIP within-class 2-way and the mean cosine to the own image,
beside the same numbers for the ridge map from the binned train EEG to the CLIP image embedding (the demo's
``baseline_ridge_clip``, fitted the same way). ``--set FIELD=VALUE`` changes a ``DemoSettings`` field for the run
(Stage A's fields get their own Stage A folder; the benchmark's cannot change here: use the demo). Only the train
and val splits are read. A minute or two per run on 2 CPU cores after the first (benchmark and Stage A ~45 s).

``--images`` goes on as the demo does, on val instead of test: the whole of Stage B, the low-level strength and the
guidance scale chosen on their val images, then ``evaluate --split val`` of every val EEG at those settings (the
judge's top-1, retrieval, CLIP and pixel within-class 2-way, the ridge baselines beside): what a change does to the
images, about four minutes per run. ``--redraw SCALExMOVES`` (after such a run with the same ``--set``) draws that run's
pipeline again on every val EEG with other CLIP-guidance steering, Stage B and the val choices held (~1 min each):

    python benchmarks/head_val.py --seed 1 --output runs/head_val --images
    python benchmarks/head_val.py --seed 1 --output runs/head_val --redraw 0.1x3 --redraw 0.07x5
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dreamdiffusion.core.files import atomic_write_json
from dreamdiffusion.core.ridge import RidgeSearch
from dreamdiffusion.evaluation.baselines import eeg_feature_matrix, load_train_pairs, ridge_clip_scores
from dreamdiffusion.experiments.demo import (
    build_stage,
    choose_and_evaluate,
    evaluate_stage,
    finetune_stage,
    pretrain_stage,
    stage_b_config,
)
from dreamdiffusion.experiments.low_level import fit_latent_stage
from dreamdiffusion.experiments.settings import DemoConfig, DemoSettings
from dreamdiffusion.training.finetune import prepared_trainer

BENCHMARK_FIELDS = {"n_subjects", "snr", "n_corpus_windows", "n_images", "trials_per_image", "center_subjects"}
STAGE_A_FIELDS = {"encoder_preset", "encoder_embed_dim", "pretrain", "mask_ratio", "pretrain_alibi",
                  "pretrain_patch_init", "pretrain_block_init", "pretrain_visible_loss_weight", "pretrain_final_norm",
                  "pretrain_patch_whiten", "pretrain_freeze_patch_embed", "pretrain_steps", "pretrain_batch_size",
                  "pretrain_learning_rate", "probe", "pretrain_encoder_learning_rate", "pretrain_decoder_embed_dim",
                  "pretrain_decoder_depth"}


def parse_sets(settings: DemoSettings, pairs: list[str]) -> DemoSettings:
    """``settings`` with each ``FIELD=VALUE`` applied, the value read as the field's current type."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(settings)}
    changes = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"error: --set {pair!r}: expected FIELD=VALUE with FIELD a DemoSettings field")
        if key in BENCHMARK_FIELDS:
            raise SystemExit(f"error: --set {key}: the benchmark's settings cannot change here (run the demo)")
        kind = _kind(fields[key])
        try:
            changes[key] = None if raw.lower() == "none" else _parse(raw, kind)
        except ValueError:
            raise SystemExit(f"error: --set {pair!r}: {raw!r} is not a valid {kind}") from None
    return dataclasses.replace(settings, **changes)


def _kind(annotation: str) -> str:
    """``bool``, ``int``, ``float``, ``floats`` (a tuple) or ``str`` from a field's annotation (``float | None``)."""
    for kind in ("tuple", "bool", "int", "float"):
        if annotation.startswith(kind) or f"{kind} |" in annotation or f"| {kind}" in annotation:
            return "floats" if kind == "tuple" else kind
    return "str"


def _parse(raw: str, kind: str):
    if kind == "bool":
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(raw)
        return raw.lower() in ("true", "1")
    if kind == "floats":
        return tuple(float(v) for v in raw.split(","))
    return {"int": int, "float": float}.get(kind, str)(raw)


def _tag(pairs: list[str]) -> str:
    return "default" if not pairs else hashlib.sha1("\n".join(sorted(pairs)).encode()).hexdigest()[:8]


def _scores(pred: torch.Tensor, truths: torch.Tensor, names: list, labels: list, seed: int) -> dict:
    """Retrieval and within-class 2-way of predictions ``[N, P]`` against the per-EEG truths ``[N, P]``."""
    first = {}
    for i, name in enumerate(names):
        first.setdefault(name, i)
    distinct = list(first)
    index = {name: j for j, name in enumerate(distinct)}
    out = ridge_clip_scores(pred, truths[[first[n] for n in distinct]], [index[n] for n in names],
                            [labels[first[n]] for n in distinct], seed=seed)
    out["cosine"] = float(F.cosine_similarity(pred, truths, dim=-1).mean())
    keys = ("retrieval_top1", "retrieval_top5", "clip_within_class_2way", "cosine", "retrieval_n_way")
    return {k: out[k] for k in keys}


def score(trainer, bench: Path, seed: int) -> dict:
    """The warm-up's CLIP head and the ridge map on every val EEG (``trainer``: after ``prepared_trainer`` on the
    benchmark at ``bench``)."""
    val = [trainer.val_ds[i] for i in range(len(trainer.val_ds))]
    # the train side as the demo's baseline reads it: binned item by item, never all of its EEG in memory
    train = load_train_pairs("synthetic", {"root": str(bench)})
    names, labels = [it["image_name"] for it in val], [str(it.get("label")) for it in val]
    truths = trainer.targets.clip_embeds(val).float().cpu()
    eeg = torch.stack([torch.as_tensor(it["eeg"]) for it in val]).float()
    cond = trainer.parts.conditioner.eval()
    device = next(cond.parameters()).device
    with torch.no_grad():
        head = torch.cat([cond(eeg[i:i + 64].to(device)).clip_embeds.float().cpu() for i in range(0, len(eeg), 64)])
    targets = trainer.targets.clip_embeds([{"image_name": k, "image": train.images.get(k)} for k in train.image_ids])
    ridge = RidgeSearch(train.features, train.image_ids).fit(targets.float().cpu().numpy())
    ridge_pred = torch.from_numpy(ridge.predict(eeg_feature_matrix([it["eeg"] for it in val]))).float()
    return {"n_val": len(val), "head": _scores(head, truths, names, labels, seed),
            "ridge": {**_scores(ridge_pred, truths, names, labels, seed), "ridge_alpha": ridge.alpha}}


IMAGE_KEYS = ("top1_accuracy", "retrieval_top1", "retrieval_top5", "clip_within_class_2way", "pcc_within_class_2way",
              "ssim_within_class_2way", "embed_within_class_2way", "num_eeg")


def val_images(out: Path, bench: Path, encoder: Path | None, cfg: DemoConfig, tag: str) -> dict:
    """The demo's Stage B and val choices, then the val split's images scored (the demo's evaluate on val)."""
    s = cfg.settings
    pipeline = finetune_stage(out, bench, encoder, cfg, name=f"finetune-{tag}")
    if s.low_level:
        fit_latent_stage(pipeline, bench, cfg)
    strength, chosen, result = choose_and_evaluate(out, bench, pipeline, cfg, s.low_level, split="val",
                                                   suffix=f"-{tag}", name=f"val_images-{tag}")
    ridge = result.get("baseline_ridge_clip") or {}
    return {**{k: result.get(k) for k in IMAGE_KEYS}, "guidance": chosen["guidance"],
            "low_level_strength": None if strength is None else strength["low_level_strength"],
            "ridge": {k: ridge.get(k) for k in ("retrieval_top1", "retrieval_top5", "clip_within_class_2way")},
            "ridge_class_top1": (result.get("baseline_ridge_class") or {}).get("top1_accuracy")}


def redraw(out: Path, bench: Path, cfg: DemoConfig, tag: str, steering: list[str]) -> list[dict]:
    """The ``--images`` run's pipeline (``finetune-TAG``, its strength and guidance as chosen for it) drawn again on
    every val EEG with other CLIP-guidance steering, ``SCALExMOVES`` each: what the steering alone does."""
    chosen = out / f"guidance-{tag}.json"
    if not chosen.is_file():
        raise SystemExit(f"--redraw: {chosen} not found: run the same --set with --images first")
    guidance = json.loads(chosen.read_text())["guidance"]
    rows = []
    for variant in steering:
        scale, _, moves = variant.partition("x")
        try:
            move = {"clip_guidance": float(scale), "clip_guidance_steps": int(moves)}
        except ValueError:
            raise SystemExit(f"--redraw {variant}: expected SCALExMOVES, e.g. 0.1x3") from None
        run_cfg = dataclasses.replace(cfg, settings=dataclasses.replace(cfg.settings, **move))
        # the ridge baselines do not depend on the steering: fitted with the first draw only
        result = evaluate_stage(out, bench, out / f"finetune-{tag}" / "pipeline", run_cfg, name=f"redraw-{tag}-{variant}",
                                guidance=guidance, split="val", progress=False, baselines=not rows)
        ridge = (rows[0]["ridge_clip_within_class_2way"] if rows
                 else (result.get("baseline_ridge_clip") or {}).get("clip_within_class_2way"))
        rows.append({"steering": variant, "guidance": guidance, **{k: result.get(k) for k in IMAGE_KEYS},
                     "ridge_clip_within_class_2way": ridge})
    return rows


def run(seed: int, output: Path, pairs: list[str], settings: DemoSettings | None = None, images: bool = False,
        steering: list[str] | None = None) -> dict:
    settings = parse_sets(settings or DemoSettings(), pairs)
    tag = _tag(pairs)
    out = Path(output) / f"seed-{seed}"
    cfg = DemoConfig(output=str(out), seed=seed, settings=settings)
    start = time.perf_counter()
    bench = build_stage(out, cfg)
    if steering:
        result = {"seed": seed, "set": pairs, "redraw": redraw(out, bench, cfg, tag, steering),
                  "seconds": round(time.perf_counter() - start, 1)}
        atomic_write_json(out / f"redraw-{tag}.json", result)
        return result
    encoder = None
    if settings.pretrain:
        stage_a = "pretrain" if not STAGE_A_FIELDS & {p.partition("=")[0] for p in pairs} else f"pretrain-{tag}"
        encoder = out / stage_a
        if not (encoder / "pretrain_summary.json").is_file():
            encoder = pretrain_stage(out, bench, cfg, name=stage_a)
    if images:
        result = {"seed": seed, "set": pairs, "images": val_images(out, bench, encoder, cfg, tag)}
        name = f"val_images-{tag}.json"
    else:
        trainer = prepared_trainer(stage_b_config(out / f"stage_b-{tag}", bench, encoder, cfg))
        result = {"seed": seed, "set": pairs, **score(trainer, bench, seed),
                  "warmup": json.loads((out / f"stage_b-{tag}" / "clip_warmup.json").read_text()).get("best")}
        name = f"head_val-{tag}.json"
    result["seconds"] = round(time.perf_counter() - start, 1)
    atomic_write_json(out / name, result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, required=True, help="benchmark seed (its val split is scored)")
    parser.add_argument("--output", type=Path, required=True, help="folder for the benchmark, Stage A and results")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a DemoSettings field (repeatable)")
    parser.add_argument("--fast", action="store_true", help="DemoSettings.fast() (the test suite's reduced run)")
    parser.add_argument("--images", action="store_true",
                        help="the whole Stage B and the val images scored as the demo scores test (~4 min a run)")
    parser.add_argument("--redraw", action="append", default=[], metavar="SCALExMOVES",
                        help="after an --images run of the same --set: its pipeline drawn again on val with this CLIP "
                             "guidance steering (e.g. 0.1x3; repeatable), Stage B and the val choices held")
    args = parser.parse_args(argv)
    r = run(args.seed, args.output, args.set, DemoSettings.fast() if args.fast else None, images=args.images,
            steering=args.redraw)
    if args.redraw:
        for row in r["redraw"]:
            print(f"seed {r['seed']} steering {row['steering']}: val images top-1 {row['top1_accuracy']:.3f}, CLIP "
                  f"within-class {row['clip_within_class_2way']:.3f} (ridge {row['ridge_clip_within_class_2way']:.3f}), "
                  f"pixel {row['pcc_within_class_2way']:.3f}; {row['num_eeg']} val EEGs")
        return 0
    if args.images:
        m, g = r["images"], r["images"]["ridge"]
        ridge_class = "-" if m["ridge_class_top1"] is None else f"{m['ridge_class_top1']:.3f}"  # a class-free base: none
        print(f"seed {r['seed']} {' '.join(r['set']) or 'demo settings'}: val images top-1 {m['top1_accuracy']:.3f} "
              f"(ridge -> class {ridge_class}), retrieval {m['retrieval_top1']:.3f} / "
              f"{m['retrieval_top5']:.3f} (ridge {g['retrieval_top1']:.3f} / {g['retrieval_top5']:.3f}), CLIP "
              f"within-class {m['clip_within_class_2way']:.3f} (ridge {g['clip_within_class_2way']:.3f}; the head's own "
              f"prediction {m.get('embed_within_class_2way') or float('nan'):.3f}), pixel "
              f"{m['pcc_within_class_2way']:.3f}; strength {m['low_level_strength']}, guidance {m['guidance']}; "
              f"{m['num_eeg']} val EEGs, {r['seconds']:.0f} s")
        return 0
    h, g = r["head"], r["ridge"]
    print(f"seed {r['seed']} {' '.join(r['set']) or 'demo settings'}: head within-class {h['clip_within_class_2way']:.3f} "
          f"(ridge {g['clip_within_class_2way']:.3f}), retrieval {h['retrieval_top1']:.3f} / {h['retrieval_top5']:.3f} "
          f"(ridge {g['retrieval_top1']:.3f} / {g['retrieval_top5']:.3f}), cosine {h['cosine']:.3f} "
          f"(ridge {g['cosine']:.3f}); {r['n_val']} val EEGs, warm-up kept step {(r['warmup'] or {}).get('step')}, "
          f"{r['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
