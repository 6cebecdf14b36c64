"""CPU seconds of each stage of ``dreamdiffusion demo`` (the paper recipe), beside the demo's own wall timings.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/demo_cpu.py --output /tmp/dd-demo [--seed 0]
                                                                              [--fast] [--json out.json]

On a shared machine the wall clock says mostly how busy it was; the process's CPU time at one thread
(``OMP_NUM_THREADS=1``) moves far less with load, so before/after comparisons use it. Each of the demo's stage
functions (``dreamdiffusion.experiments.demo``: build, Stage A, Stage B, the Stage B probe, the guidance choice,
evaluate) is timed as the demo calls it; ``metrics.json`` keeps the demo's own wall ``timings_s``. Prints one JSON
object (and writes it to ``--json``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import torch

from dreamdiffusion.core.machine import machine_description
from dreamdiffusion.experiments import demo as D

STAGES = ("build_stage", "pretrain_stage", "finetune_stage", "stage_b_probe", "guidance_stage", "evaluate_stage")


def _timed(name: str, fn, record: dict):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record[name] = {"cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1)}
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="DemoSettings.fast() (a plumbing check)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    stages: dict = {}
    for name in STAGES:  # run_demo looks these up in its module at call time
        setattr(D, name, _timed(name, getattr(D, name), stages))
    settings = D.DemoSettings.fast() if args.fast else D.DemoSettings()
    cpu, wall = time.process_time(), time.perf_counter()
    metrics = D.run_demo(D.DemoConfig(output=args.output, seed=args.seed, settings=settings))
    result = {"total": {"cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1)},
              "stages": stages, "demo_timings_s": metrics["timings_s"], "seed": args.seed, "fast": args.fast,
              "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "machine": machine_description(),
              "load_average": os.getloadavg()}
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
