"""The GPU benchmark's harness: rows, timing and FLOP counting, the matrix-product ceiling, the compile helpers, and
the child processes that run each ``torch.compile`` variant under a hard limit. ``gpu_bench.py`` is the command;
``gpu_workloads.py`` has the workloads it times. The three share one run state (``TINY``, ``DEADLINE``, ``COMPILE``,
``RUN``), kept here.
"""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "gpu_bench.py")  # what a compile variant's child process runs


def _load_model_file():
    """Load the pure model file on its own, so the benchmark needs nothing else of the package."""
    import importlib.util

    path = os.path.join(HERE, "..", "src", "dreamdiffusion", "models", "eeg_encoder.py")
    spec = importlib.util.spec_from_file_location("dreamdiffusion_eeg_encoder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_m = _load_model_file()
PRESETS, EEGEncoder, MaskedSignalModel, EEGBlock = _m.PRESETS, _m.EEGEncoder, _m.MaskedSignalModel, _m.Block


@dataclass
class Row:
    workload: str
    variant: str
    unit: str
    throughput: float | None = None  # items per second (samples, images)
    seconds_per_item: float | None = None
    step_s: float | None = None
    compile_s: float | None = None  # first call, compile included (torch.compile variants)
    peak_mem_gib: float | None = None
    tflops: float | None = None
    mfu: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- utilities
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device):
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


TINY = {"on": False}  # --tiny: one warm-up and one timed call, enough to prove the script runs


def timed(fn, device, warmup: int, iters: int) -> float:
    """Mean seconds per call after ``warmup`` untimed calls (compilation happens there)."""
    if TINY["on"]:
        warmup, iters = min(warmup, 1), 1
    for _ in range(warmup):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / iters


def count_flops(fn) -> float:
    """FLOPs of one call, counted on the eager graph: modules compiled in place (regional compilation) run eagerly
    here, where the counter sees every operation."""
    with torch.compiler.set_stance("force_eager"), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_ceiling(device, tiny: bool) -> float:
    n = 256 if tiny else 8192
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    s = timed(lambda: a @ b, device, warmup=3, iters=10 if not tiny else 3)
    return 2 * n**3 / s / 1e12


def fill(row: Row, step_s: float, items: int, flops: float | None, ceiling: float, device) -> Row:
    row.step_s = step_s
    row.throughput = items / step_s
    row.seconds_per_item = step_s / items
    row.peak_mem_gib = peak_gib(device)
    if flops:
        row.tflops = flops / step_s / 1e12
        row.mfu = row.tflops / ceiling if ceiling else None
    return row


DEADLINE = {"t": float("inf")}  # monotonic time after which remaining variants are skipped
COMPILE = {"on": True, "backend": "inductor"}
# child: the key of the one variant a child process runs (None in the parent); select: key substrings to run;
# isolate: run compile variants in child processes (deferred to the end); workload: the bench function running.
RUN = {"child": None, "select": None, "isolate": True, "deferred": [], "workload": None, "sleep_s": 0.0}


def variant_key(row: Row) -> str:
    """A stable name of a variant (workload + variant text), usable on a command line."""
    return re.sub(r"[^a-z0-9]+", "-", f"{RUN['workload']} {row.variant}".lower()).strip("-")


def phase(name: str) -> None:
    """Tell the parent which step a child is in (its timeout row names it)."""
    if RUN["child"] is not None:
        print(f"@@phase {name}", flush=True)
        if name == "compile" and RUN["sleep_s"]:  # --child-sleep-s: tests the timeout path
            helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # like a compile worker
            print(f"@@grandchild {helper.pid}", flush=True)
            time.sleep(RUN["sleep_s"])


def compile_options(mode: str | None = None) -> dict:
    """``torch.compile`` keywords: static shapes on the chosen backend (modes are inductor's)."""
    if COMPILE["backend"] == "inductor":
        return {"mode": mode, "dynamic": False}
    return {"backend": COMPILE["backend"], "dynamic": False}


def compiled(model, mode: str | None = None):
    """The whole model under ``torch.compile`` (:func:`compile_options`)."""
    return torch.compile(model, **compile_options(mode))


def compile_regions(model: nn.Module, kinds: tuple) -> int:
    """Regional compilation: each submodule of one of ``kinds`` compiled in place (``nn.Module.compile``), the rest
    eager. Repeated blocks of one shape share one compiled graph, so the compiler builds a block's kernels once
    instead of the whole model's (run 4: the whole MSM model was still compiling after 150-180 s). Returns how many
    modules were compiled."""
    n = 0
    for module in model.modules():
        if isinstance(module, kinds):
            module.compile(**compile_options())
            n += 1
    return n


def first_call(fn, device) -> float:
    """Seconds of one call (for a compiled callable: compile plus run)."""
    phase("compile")
    t0 = time.perf_counter()
    fn()
    sync(device)
    s = time.perf_counter() - t0
    phase("steady")
    return s


def build(factory, device):
    """Build a module straight on ``device`` (fast random init on a GPU); fall back to CPU init + move.

    Moved to ``device`` afterwards as well: a tensor made from numpy (the encoder's sine-cosine positions) stays on
    the CPU under a device context, and the first forward on a GPU then fails on mixed devices (the H200 run of
    2026-12-04 did, in every generation variant)."""
    try:
        with torch.device(device):
            module = factory()
    except Exception:
        module = factory()
    return module.to(device)


def run_variant(rows: list, make_row, fn, compiles: bool = False):
    """Run one variant; an OOM or other failure becomes a row with the reason, not a crash."""
    key = variant_key(make_row())
    if RUN["child"] is not None:  # a child runs its one variant and nothing else
        if key == RUN["child"]:
            phase("setup")
            _run_here(rows, make_row, fn, key)
        return
    if RUN["select"] and not any(s in key for s in RUN["select"]):
        return
    if time.monotonic() > DEADLINE["t"]:
        row = make_row()
        row.note = "skipped: time budget spent"
        rows.append(row)
        print(format_row(row), flush=True)
        return
    if compiles and not COMPILE["on"]:
        row = make_row()
        row.note = "skipped: torch.compile off (--no-compile; the default on CPU)"
        rows.append(row)
        print(format_row(row), flush=True)
        return
    if compiles and RUN["isolate"]:
        RUN["deferred"].append((RUN["workload"], key, make_row))
        print(f"(deferred to a child process with a time limit: {key})", flush=True)
        return
    _run_here(rows, make_row, fn, key)


def _run_here(rows, make_row, fn, key):
    torch._dynamo.reset()
    t0 = time.perf_counter()
    try:
        rows.append(fn())
    except torch.OutOfMemoryError:
        row = make_row()
        row.note = "out of memory"
        rows.append(row)
    except Exception as exc:  # keep measuring the others
        row = make_row()
        row.note = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
        rows.append(row)
    rows[-1].extra["wall_s"] = round(time.perf_counter() - t0, 1)  # setup + compile + timing + FLOP count
    rows[-1].extra["key"] = key
    print(format_row(rows[-1]), flush=True)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# Order in which deferred compile variants run: the smoke test, then the generation goals, MSM, Stage B (the
# longest compile: forward and backward of the whole UNet) last.
CHILD_ORDER = ("smoke", "generation", "msm", "stageb")


def run_child(args, workload: str, key: str, make_row, limit: float, extra_env: dict) -> Row:
    """Run one variant in a child process (own process group) for at most ``limit`` seconds."""
    fd, tmp_json = tempfile.mkstemp(prefix="gpu_bench_child_", suffix=".json")
    os.close(fd)
    os.unlink(tmp_json)
    cmd = [sys.executable, "-u", SCRIPT, "--device", args.device, "--only", workload,
           "--child", key, "--json", tmp_json, "--compile-backend", args.compile_backend,
           "--child-deadline", repr(time.time() + limit), "--child-sleep-s", str(args.child_sleep_s),
           "--matmul-ceiling", str(RUN["ceiling"])] + (["--tiny"] if args.tiny else [])
    env = {**os.environ, **extra_env, "PYTHONUNBUFFERED": "1"}
    if args.compile_debug:
        env["TORCH_LOGS"] = "recompiles,graph_breaks,perf_hints"
    state = {"phase": "start", "times": {}}
    t0 = time.monotonic()
    # own process group (killed as one), same session (so whatever runs this script can still end it)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env, process_group=0)
    RUN["current_child"] = (proc, make_row, state)

    def read():
        for line in proc.stdout:
            if line.startswith("@@phase "):
                state["phase"] = line.split(None, 1)[1].strip()
                state["times"][state["phase"]] = round(time.monotonic() - t0, 1)
            elif line.startswith("@@grandchild "):
                state["grandchild"] = int(line.split()[1])
            print(f"    [child {proc.pid}] {line}", end="", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    timed_out = False
    try:
        rc = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the child and its compile workers
        except ProcessLookupError:
            pass
        rc = proc.wait()
    RUN["current_child"] = None
    reader.join(timeout=10)
    wall = round(time.monotonic() - t0, 1)
    row = None
    if not timed_out and rc == 0 and os.path.exists(tmp_json):
        with open(tmp_json) as fh:
            found = json.load(fh)["rows"]
        if found:
            row = Row(**found[0])
    if os.path.exists(tmp_json):
        os.unlink(tmp_json)
    if row is None:
        row = make_row()
        if timed_out:
            row.note = f"timed out after {limit:.0f} s ({state['phase']})"
        else:
            row.note = f"failed: child exited with status {rc} in phase {state['phase']} (see its stderr above)"
    row.extra.update({"child_pid": proc.pid, "child_wall_s": wall, "phase_started_s": state["times"],
                      **({"grandchild_pid": state["grandchild"]} if "grandchild" in state else {}),
                      **({"env": extra_env} if extra_env else {})})
    return row


def run_deferred(args, rows) -> None:
    """The compile variants, one child each, smoke test first; stop starting new ones when the budget is spent."""
    order = args.child_order.split(",")
    deferred = sorted(RUN["deferred"], key=lambda d: order.index(d[0]) if d[0] in order else len(order))
    extra_env: dict = {}
    for workload, key, make_row in deferred:
        remaining = DEADLINE["t"] - time.monotonic()
        if workload != "smoke" and RUN.get("inductor_broken"):
            row = make_row()
            row.note = "skipped: the inductor smoke test did not finish (see above)"
        elif remaining < (1 if args.tiny else 45):
            row = make_row()
            row.note = "skipped: time budget spent"
        else:
            limit = min(args.compile_timeout_s, remaining)
            if workload == "smoke":
                limit = min(limit, args.smoke_timeout_s)
            print(f"(child: {key}, limit {limit:.0f} s)", flush=True)
            row = run_child(args, workload, key, make_row, limit, extra_env)
            if workload == "smoke" and row.throughput is None:
                rows.append(row)
                print(format_row(row), flush=True)
                # a stalled or failed compile: try once more with inductor compiling in this process only
                extra_env = {"TORCHINDUCTOR_COMPILE_THREADS": "1"}
                remaining = DEADLINE["t"] - time.monotonic()
                print("(smoke test again with TORCHINDUCTOR_COMPILE_THREADS=1)", flush=True)
                row = run_child(args, workload, key, make_row, min(limit, max(remaining, 1)), extra_env)
                if row.throughput is None:
                    RUN["inductor_broken"] = True
        rows.append(row)
        print(format_row(row), flush=True)


# ----------------------------------------------------------------------------------------------- report
def format_row(r: Row) -> str:
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    return (f"| {r.workload} | {r.variant} | {f(r.throughput, '.2f')} {r.unit} | {f(r.seconds_per_item, '.4f')} s/item "
            f"| {f(r.compile_s, '.1f')} s | {f(r.peak_mem_gib, '.1f')} GiB | {f(r.tflops, '.1f')} | "
            f"{f(r.mfu and 100 * r.mfu, '.1f')} % | {r.note} {json.dumps(r.extra) if r.extra else ''} |")
