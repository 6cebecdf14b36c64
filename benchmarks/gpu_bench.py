"""GPU benchmark: DreamDiffusion's three workloads, reference-style settings beside fast ones, in one run.

Measures, on whatever device it is given:

1. the bf16 matrix-product ceiling (the yardstick for MFU);
2. Stage A: one MSM pretraining step at the paper preset (152M encoder, batch 100, mask 0.75);
3. Stage B: one fine-tuning step of an SD 1.5-shaped UNet (860M) conditioned on the paper encoder, with the
   paper's trainable set (encoder + mapper + every UNet ``attn2`` and the ``norm2`` before it);
4. generation: 512 px images from EEG, reference-style (PLMS 250 steps, fp32, classic attention, no CFG)
   and fast (DPM-Solver++ 25 steps with CFG, bf16, SDPA, channels-last, ``torch.compile``), with a check that
   the compiled path's images match the plain path's for the same seed.

Weights are random: this measures speed and memory, not quality. FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` on one step of each workload (so MFU is on counted FLOPs).

    python benchmarks/gpu_bench.py --json results.json             # on a GPU
    python benchmarks/gpu_bench.py --device cpu --tiny              # small shapes, any machine (tested)

Each variant runs in its own try block: an out-of-memory variant is reported as such, the rest go on.

``torch.compile`` variants run last, each in a child process of this script (``--child KEY``) with a hard
wall-clock limit (``--compile-timeout-s``, default 240 s, and never past ``--budget-s``): a child that runs over is
killed with its whole process group (inductor's compile workers too) and its row says ``timed out after N s
(PHASE)``, PHASE being the step it was in (``start`` = importing and building the workload's shared models,
``setup`` = the variant's own models, ``compile`` = the first call, ``steady`` = timed calls, ``flops``). Just before its limit the child prints every thread's Python stack to stderr (``faulthandler``), so a
stall shows where it is. Rows report the first call (compile included) apart from the steady-state step time.
On a GPU an inductor smoke test (a small MLP, forward and backward) runs first; if it stalls, it is retried with
``TORCHINDUCTOR_COMPILE_THREADS=1`` and, if that works, the variants run so too. ``--compile-debug`` sets
``TORCH_LOGS=recompiles,graph_breaks,perf_hints`` for the children; ``--compile-backend eager|aot_eager`` splits a
stall between dynamo, AOT autograd and inductor. The one command for a GPU session is ``benchmarks/device_run.sh``.

This file is the command (its options and the order of the run); the workloads are in ``gpu_workloads.py`` and the
harness that times them and runs the compile children in ``gpu_harness.py``, beside it.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import os
import platform
import signal
import sys
import time
from dataclasses import asdict

import torch

from dreamdiffusion.core.files import atomic_write_json

# The harness and the workloads sit beside this file (also when it is loaded by path, as the tests do).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_harness import (
    CHILD_ORDER,
    COMPILE,
    DEADLINE,
    PRESETS,  # noqa: F401 (re-exported: the tests build models through this module)
    RUN,
    TINY,
    EEGEncoder,  # noqa: F401
    build,  # noqa: F401
    matmul_ceiling,
    run_deferred,
)
from gpu_workloads import bench_generation, bench_msm, bench_smoke, bench_stageb, sd15_unet  # noqa: F401

WORKLOADS = ("msm", "generation", "stageb")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="small shapes: checks the script on any machine")
    ap.add_argument("--only", default="msm,stageb,generation", help="comma list of workloads (msm, generation, "
                    "stageb; smoke: the inductor smoke test alone)")
    ap.add_argument("--select", default=None,
                    help="comma list of substrings: run only variants whose key (printed in each row) holds one")
    ap.add_argument("--json", default=None, help="write results here (rewritten after every row)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants (default on CPU)")
    ap.add_argument("--compile", action="store_true", help="run the torch.compile variants on a CPU too")
    ap.add_argument("--budget-s", type=float, default=float("inf"),
                    help="no variant starts after this many seconds; compile children are cut off at it")
    ap.add_argument("--compile-timeout-s", type=float, default=240.0,
                    help="hard wall-clock limit of each torch.compile variant's child process")
    ap.add_argument("--smoke-timeout-s", type=float, default=90.0, help="limit of the inductor smoke test")
    ap.add_argument("--no-smoke", action="store_true", help="skip the inductor smoke test (default off on CPU)")
    ap.add_argument("--compile-debug", action="store_true",
                    help="children run with TORCH_LOGS=recompiles,graph_breaks,perf_hints")
    ap.add_argument("--compile-backend", default="inductor", choices=("inductor", "aot_eager", "eager"),
                    help="torch.compile backend of the compile variants (eager/aot_eager: to locate a stall)")
    ap.add_argument("--child-order", default=",".join(CHILD_ORDER),
                    help="order of the workloads' compile children (the budget may not reach the last)")
    ap.add_argument("--in-process", action="store_true",
                    help="run compile variants in this process, without a time limit (the old behaviour)")
    # used by the parent to start a child; --child-sleep-s is for the test of the timeout path
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-deadline", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-sleep-s", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--matmul-ceiling", type=float, default=None, help=argparse.SUPPRESS)
    return ap


def configure(args, argv) -> dict:
    """Set the run's shared state (``COMPILE``, ``TINY``, ``RUN``, ``DEADLINE``) from the options; return the run's
    ``meta`` record (the matrix-product ceiling measured, or given by the parent to a child)."""
    device = torch.device(args.device)
    COMPILE["on"] = not args.no_compile and (device.type == "cuda" or args.compile or args.child is not None)
    COMPILE["backend"] = args.compile_backend
    TINY["on"] = args.tiny
    RUN.update(child=args.child, select=args.select.split(",") if args.select else None,
               isolate=not args.in_process, sleep_s=args.child_sleep_s)
    if args.child is not None and args.child_deadline:
        # print where a stall is (every thread's stack) shortly before the parent kills this process
        left = args.child_deadline - time.time()
        faulthandler.dump_traceback_later(max(0.5, left - min(10.0, 0.2 * left)), exit=False)
    DEADLINE["t"] = time.monotonic() + args.budget_s
    meta = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "tiny": args.tiny, "date": time.strftime("%Y-%m-%d"),
            "compile_backend": args.compile_backend, "compile_timeout_s": args.compile_timeout_s,
            "argv": sys.argv[1:] if argv is None else list(argv)}
    # a child reuses the ceiling its parent measured
    ceiling = args.matmul_ceiling if args.child is not None and args.matmul_ceiling else matmul_ceiling(device, args.tiny)
    RUN["ceiling"] = meta["matmul_ceiling_tflops"] = ceiling
    if args.child is None:
        print(f"device {meta['device']}, torch {torch.__version__}; matrix-product ceiling {ceiling:.1f} TFLOP/s",
              flush=True)
        print("| workload | variant | throughput | time per item | first call (compile) | peak memory | TFLOP/s | MFU "
              "| note |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    return meta


class SavedRows(list):
    """The rows measured so far, written to ``--json`` (with the run's ``meta``) after every one, atomically."""

    def __init__(self, path: str | None, meta: dict):
        super().__init__()
        self.path, self.meta = path, meta

    def append(self, item):
        super().append(item)
        self.save()

    def save(self) -> None:
        if self.path:  # NaN (an undefined MFU) is written as null
            atomic_write_json(self.path, {"meta": self.meta, "rows": [asdict(r) for r in self]}, nonfinite_as_null=True)


def stop_on_signal(rows: SavedRows):
    """A SIGTERM handler (e.g. ``timeout`` in device_run.sh): end the running child, keep what was measured."""

    def on_term(signum, _frame):
        current = RUN.get("current_child")
        if current is not None:
            proc, make_row, state = current
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            row = make_row()
            row.note = f"stopped by signal {signum} (the run's hard limit) in phase {state['phase']}"
            row.extra.update({"child_pid": proc.pid, "phase_started_s": state["times"]})
            list.append(rows, row)
        rows.meta["stopped_by_signal"] = signum
        rows.save()
        print(f"stopped by signal {signum}; {len(rows)} rows saved", flush=True)
        os._exit(128 + signum)

    return on_term


def run_workloads(args, only: set, rows: SavedRows) -> None:
    """The eager variants of each workload asked for, then the deferred torch.compile variants."""
    device, tiny, ceiling, meta = torch.device(args.device), args.tiny, RUN["ceiling"], rows.meta
    t_start = time.monotonic()
    smoke = ("smoke" in only or (device.type == "cuda" and not args.no_smoke and args.compile_backend == "inductor"
                                 and args.child is None and RUN["isolate"]))
    if smoke:
        RUN["workload"] = "smoke"
        bench_smoke(device, tiny, ceiling, rows)
    if "msm" in only:
        RUN["workload"] = "msm"
        bench_msm(device, tiny, ceiling, rows, batch_sizes=(4, 8) if tiny else (100, 256))
    if "generation" in only:
        RUN["workload"] = "generation"
        bench_generation(device, tiny, ceiling, rows, gen_batch=2 if tiny else 5,
                         baseline_steps=4 if tiny else 250, fast_steps=3 if tiny else 25)
    if "stageb" in only:
        RUN["workload"] = "stageb"
        bench_stageb(device, tiny, ceiling, rows, batches=(2, 2) if tiny else (8, 25))
    meta["eager_part_s"] = round(time.monotonic() - t_start, 1)
    if RUN["deferred"]:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"eager variants done in {meta['eager_part_s']} s; now the torch.compile variants, one child process "
              f"each, limit {args.compile_timeout_s:.0f} s", flush=True)
        run_deferred(args, rows)
    meta["total_s"] = round(time.monotonic() - t_start, 1)


def main(argv=None):
    ap = build_parser()
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    unknown = only - set(WORKLOADS) - {"smoke"}
    if unknown:
        ap.error(f"--only: unknown workload(s) {', '.join(sorted(unknown))}; choose from msm, generation, stageb, smoke")
    rows = SavedRows(args.json, configure(args, argv))
    if args.child is None:
        signal.signal(signal.SIGTERM, stop_on_signal(rows))
    run_workloads(args, only, rows)
    rows.save()
    return rows


if __name__ == "__main__":
    main()

