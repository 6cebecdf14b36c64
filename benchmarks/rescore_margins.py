"""The method's margins over ``ridge -> CLIP`` with their bootstrap intervals, for demo runs made before ``evaluate``
wrote them (``baseline_ridge_clip_margins``): the same test images scored again, nothing drawn again.

    .venv/bin/python benchmarks/rescore_margins.py runs/seeds/paper-1093 [RUN ...] [--write]

For each run: rebuilds the run's benchmark from its recorded parameters and seed into a scratch folder
(``seeds.sh`` deletes the simulated EEG after a run; the simulation is deterministic), checks that the rebuilt
images and trials are the run's, then runs ``evaluate`` with the run's own config on the run's saved test images
(``--generated``) and the run's pipeline (its CLIP head on the test EEG). The rescored numbers must equal the run's
(retrieval, CLIP within-class, the ridge map's): a run whose numbers do not come back is refused, not rescored.
Prints each run's margins; ``--write`` adds them to the run's ``metrics.json`` (atomically), where
``benchmarks/seed_table.py`` reads them. About a minute a run on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from dreamdiffusion.core.files import atomic_write_json
from dreamdiffusion.data.synthetic import build_benchmark
from dreamdiffusion.evaluation.evaluate import EvaluateConfig, evaluate
from dreamdiffusion.evaluation.figures import margins_text

# numbers the rescoring must give back exactly as the run wrote them (the proof that it scored the same thing)
CHECKED = ("retrieval_top1", "retrieval_top5", "clip_within_class_2way", "embed_within_class_2way")
BUILD_KEYS = ("n_subjects", "snr", "n_corpus_windows", "resolution", "trials_per_image", "n_images",
              "center_subjects")


def rebuild(run: Path, scratch: Path) -> Path:
    """The run's benchmark with its EEG: the run's own folder if it still has it, else rebuilt into ``scratch``."""
    bench = run / "benchmark"
    if (bench / "eeg.npy").is_file():
        return bench
    params = json.loads((bench / "benchmark.json").read_text())["parameters"]
    out = build_benchmark(scratch / "benchmark", seed=params["seed"], **{k: params[k] for k in BUILD_KEYS})
    for name in ("images.npy", "labels.npy"):
        if not np.array_equal(np.load(bench / name), np.load(out / name)):
            raise SystemExit(f"error: {run}: the rebuilt benchmark's {name} differs from the run's")
    if json.loads((bench / "trials.json").read_text()) != json.loads((out / "trials.json").read_text()):
        raise SystemExit(f"error: {run}: the rebuilt benchmark's trials differ from the run's")
    return out


def rescore(run: Path) -> dict:
    """``baseline_ridge_clip_margins`` of ``run``, from its saved test images (checked against its numbers)."""
    metrics_path = run / "evaluate" / "metrics.json"
    if not metrics_path.is_file():
        raise SystemExit(f"error: {run}: no evaluate/metrics.json (not a finished demo output)")
    old = json.loads(metrics_path.read_text())
    fields = {f.name for f in dataclasses.fields(EvaluateConfig)}
    with tempfile.TemporaryDirectory(prefix="rescore-") as tmp:
        scratch = Path(tmp)
        bench = rebuild(run, scratch)
        config = {k: v for k, v in old["config"].items() if k in fields}
        config.update(output=str(scratch / "evaluate"), model=str(run / "finetune" / "pipeline"),
                      dataset_options={**config["dataset_options"], "root": str(bench)},
                      generated=str(run / "evaluate" / "samples"), fid=False, overwrite=True)
        new = evaluate(EvaluateConfig(**config), progress=False)
    pairs = [(k, old.get(k), new.get(k)) for k in CHECKED]
    pairs += [(f"baseline_ridge_clip.{k}", (old.get("baseline_ridge_clip") or {}).get(k),
               (new.get("baseline_ridge_clip") or {}).get(k)) for k in CHECKED[:3]]
    wrong = [f"{k} {a} -> {b}" for k, a, b in pairs if a is None or b is None or abs(a - b) > 1e-9]
    if wrong:
        raise SystemExit(f"error: {run}: the rescored numbers are not the run's ({'; '.join(wrong)})")
    return new["baseline_ridge_clip_margins"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="demo output folders")
    parser.add_argument("--write", action="store_true", help="add the margins to each run's metrics.json")
    args = parser.parse_args(argv)
    for run in args.runs:
        margins = rescore(run)
        seed = json.loads((run / "metrics.json").read_text()).get("seed")
        print(f"{run} (seed {seed}): {margins_text(margins, digits=4)}")
        if args.write:
            for name in ("metrics.json", "evaluate/metrics.json"):
                path = run / name
                data = json.loads(path.read_text())
                data["baseline_ridge_clip_margins"] = margins
                data["baseline_ridge_clip_margins_from"] = "benchmarks/rescore_margins.py (the run's images scored again)"
                atomic_write_json(path, data, nonfinite_as_null=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
