"""Seconds of the paper demo's val choice before the test images (the low-level strength, then the guidance scale),
with the grids and reuse of before ``67a193d`` and with the current ones, on one finished demo run folder.

    python benchmarks/val_choice_time.py runs/seeds/paper-953 --seed 953 --output runs/val_choice_time

RUN must keep its benchmark's EEG (``KEEP_BENCHMARK=1 bash benchmarks/seeds.sh paper 953``). Each variant works on
its own copy of RUN's pipeline (the stages write its ``generation.json``), calls the two stages as the demo calls
them and prints seconds, the choices and whether both variants wrote the same ``generation.json``. Run it alone: the
seconds are the result. The table is in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

from dreamdiffusion.experiments.demo import drawn_at_guidance, guidance_stage
from dreamdiffusion.experiments.low_level import low_level_stage
from dreamdiffusion.experiments.settings import DemoConfig, DemoSettings

# what the demo chose among, and how, before 67a193d: strength 1 and guidance 1 in the grids, every set drawn
BEFORE = dataclasses.replace(DemoSettings(), low_level_strengths=(1.0, 0.67, 0.5, 0.33),
                             guidance_choices=(1.0, 3.0, 5.0))


def time_choice(run: Path, seed: int, work: Path, settings: DemoSettings, reuse: bool) -> dict:
    """Both choices on a fresh copy of ``run``'s pipeline under ``work``; their seconds, choices and
    ``generation.json``."""
    pipe = work / "pipeline"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(run / "finetune" / "pipeline", pipe)
    cfg = DemoConfig(output=str(work), seed=seed, settings=settings)
    start = time.perf_counter()
    strength = low_level_stage(work, run / "benchmark", pipe, cfg, settings.select_guidance)
    chosen = guidance_stage(work, run / "benchmark", pipe, cfg, known=drawn_at_guidance(strength) if reuse else None)
    return {"seconds": round(time.perf_counter() - start, 1), "strength": strength["low_level_strength"],
            "guidance": chosen["guidance"], "generation_json": json.loads((pipe / "generation.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished paper demo folder with its benchmark kept")
    parser.add_argument("--seed", type=int, required=True, help="the seed the demo ran at")
    parser.add_argument("--output", type=Path, required=True, help="scratch folder for the pipeline copies")
    args = parser.parse_args()
    results = {"before": time_choice(args.run, args.seed, args.output / "before", BEFORE, reuse=False),
               "after": time_choice(args.run, args.seed, args.output / "after", DemoSettings(), reuse=True)}
    for name, r in results.items():
        print(f"{name}: {r['seconds']} s; strength {r['strength']}, guidance {r['guidance']}")
    same = results["before"]["generation_json"] == results["after"]["generation_json"]
    print(f"same generation.json: {same}")


if __name__ == "__main__":
    main()
