"""The GPU benchmark script must not rot: run it small on the CPU (never timed here)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--device", "cpu", "--tiny", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["rows"]
    workloads = {r["workload"] for r in rows}
    assert {"MSM pretraining step", "Stage B step (paper trainable set)", "generation (tiny)"} <= workloads
    measured = [r for r in rows if not r["note"].startswith("skipped")]
    # every variant that ran produced a throughput and counted FLOPs; none failed
    assert measured and all(r["throughput"] and r["throughput"] > 0 for r in measured), rows
    assert all(r["tflops"] is not None for r in measured)
    assert not [r for r in rows if r["note"].startswith("failed") or r["note"] == "out of memory"]
    # compile variants are skipped on the CPU, and say so
    assert all("torch.compile" in r["variant"] for r in rows if r["note"].startswith("skipped"))
    assert all(r["compile_s"] is None and r["extra"]["wall_s"] >= 0 for r in measured)
    assert result["meta"]["total_s"] > 0


def _bench(tmp_path, *args, timeout=300):
    out = tmp_path / "bench.json"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--device", "cpu", "--tiny",
                           "--json", str(out), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text()), proc, time.monotonic() - t0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a killed process not yet reaped by its new parent is dead too


@pytest.mark.slow
def test_compile_variant_runs_in_a_child_process(tmp_path):
    """A torch.compile variant (eager backend: dynamo's graph capture, no C++ compile) runs in its own process,
    reports its first call apart from the steady-state time, and comes back into the parent's table."""
    result, proc, _ = _bench(tmp_path, "--only", "msm", "--compile", "--compile-backend", "eager",
                             "--select", "compile-batch-4")
    rows = result["rows"]
    assert [r["variant"] for r in rows] == ["bf16 + SDPA + fused AdamW + torch.compile, batch 4"], rows
    row = rows[0]
    assert row["note"] == "" and row["throughput"] > 0 and row["compile_s"] > 0 and row["tflops"] is not None
    assert row["extra"]["child_pid"] > 0 and row["extra"]["child_wall_s"] > 0
    assert "[child " in proc.stdout  # its output came through the parent
    assert set(row["extra"]["phase_started_s"]) == {"setup", "compile", "steady", "flops"}


@pytest.mark.slow
def test_regional_compile_variant_compiles_each_block(tmp_path):
    """The regional variant (run 4's next step) compiles every transformer block of the MSM model in place, runs, and
    still counts the FLOPs of the whole step (on the eager graph)."""
    # the eager twin in the same run (one process fewer than a second run: the suite's time)
    result, _, _ = _bench(tmp_path, "--only", "msm", "--compile", "--compile-backend", "eager",
                          "--select", "regional,bf16-sdpa-fused-adamw-batch-4")
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) == {"bf16 + SDPA + fused AdamW + regional torch.compile (each block), batch 4",
                         "bf16 + SDPA + fused AdamW, batch 4"}, rows
    row = rows["bf16 + SDPA + fused AdamW + regional torch.compile (each block), batch 4"]
    assert row["note"] == "" and row["throughput"] > 0 and row["compile_s"] > 0
    # tiny preset: 2 encoder blocks + 1 decoder block
    assert row["extra"]["compiled_blocks"] == 3
    eager = rows["bf16 + SDPA + fused AdamW, batch 4"]
    assert row["tflops"] is not None and eager["tflops"] is not None
    assert abs(row["tflops"] * row["seconds_per_item"] - eager["tflops"] * eager["seconds_per_item"]) <= 1e-6 * max(
        1.0, eager["tflops"] * eager["seconds_per_item"])


@pytest.mark.slow
def test_compile_variant_over_its_limit_is_killed_with_its_workers(tmp_path):
    """A child that stalls in its compile is killed at --compile-timeout-s, with the processes it started; its row
    says so, its Python stack is printed first, and the run goes on."""
    limit = 30  # the child must reach its compile phase first: importing torch takes >12 s on a loaded 2-core box
    result, proc, wall = _bench(tmp_path, "--only", "msm", "--compile", "--select", "compile-batch-4",
                                "--compile-timeout-s", str(limit), "--child-sleep-s", "300")
    rows = result["rows"]
    assert len(rows) == 1
    row = rows[0]
    assert row["note"] == f"timed out after {limit} s (compile)", row
    assert row["throughput"] is None and limit <= row["extra"]["child_wall_s"] < limit + 10
    assert wall < 150  # not the 300 s the child would have slept
    time.sleep(0.5)
    assert not _alive(row["extra"]["child_pid"])
    assert not _alive(row["extra"]["grandchild_pid"])  # the whole process group went
    assert "in phase" in proc.stderr and "in first_call" in proc.stderr  # faulthandler's dump before the kill


def test_device_run_script_parses_and_refuses_without_wheels(tmp_path):
    """benchmarks/device_run.sh, the one command of a GPU session: valid bash, and without the carried wheels it
    stops at once with a line saying what to carry (before any benchmark runs)."""
    script = ROOT / "benchmarks" / "device_run.sh"
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WHEELS": str(tmp_path / "no_wheels"),
           "SITE": str(tmp_path / "site"), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert 'call run with carry=[".whl"]' in proc.stdout
    assert not (tmp_path / "out" / "gpu_bench.json").exists()
    assert "install the carried wheels" in (tmp_path / "out" / "log").read_text()


def test_build_puts_every_tensor_on_the_device():
    """Under a device context a tensor made from numpy stays on the CPU (the encoder's positions): build moves it."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("gpu_bench_for_test", ROOT / "benchmarks" / "gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # (its dataclasses look their module up)
    try:
        spec.loader.exec_module(bench)
        kwargs = {k: bench.PRESETS["tiny"][k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio")}
        for factory in (lambda: bench.EEGEncoder(**kwargs), lambda: bench.sd15_unet(True)):
            module = bench.build(factory, torch.device("meta"))
            tensors = dict(module.named_parameters()) | dict(module.named_buffers())
            assert tensors and {n for n, t in tensors.items() if t.device.type != "meta"} == set()
    finally:
        sys.modules.pop(spec.name, None)


def _fake_python(tmp_path, fast_status: int) -> Path:
    """A stand-in for python3: imports succeed; `-m dreamdiffusion demo` records its arguments and exits
    ``fast_status`` for a --fast run, 0 otherwise (writing the files a finished demo leaves)."""
    fake = tmp_path / "python"
    fake.write_text(f"""#!/usr/bin/env bash
[ "$1" = "-c" ] && exit 0
echo "$@" >> {tmp_path}/calls
out=""; prev=""
for a in "$@"; do [ "$prev" = "--output" ] && out=$a; prev=$a; done
case " $* " in *" --fast "*) exit {fast_status};; esac
mkdir -p "$out/evaluate" && echo '{{}}' > "$out/metrics.json" && echo report > "$out/report.md"
""")
    fake.chmod(0o755)
    return fake


@pytest.mark.parametrize("fast_status", [0, 1])
def test_device_demo_script_runs_the_full_demos_only_after_the_fast_ones(tmp_path, fast_status):
    """benchmarks/device_demo.sh: the fast demo of each recipe first; the full runs (timed, packed into $OUT) only if
    every fast one passed, and a failed fast run makes the script fail."""
    script = ROOT / "benchmarks" / "device_demo.sh"
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "WHEELS": str(tmp_path / "no_wheels"), "WORK": str(tmp_path / "work"),
           "PYTHON": str(_fake_python(tmp_path, fast_status)), "DEMO_SEED": "5"}
    proc = subprocess.run(["bash", str(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    calls = (tmp_path / "calls").read_text().splitlines()
    fast = [c for c in calls if "--fast" in c]
    full = [c for c in calls if "--fast" not in c]
    assert len(fast) == 2 and all("--seed 11" in c for c in fast)
    if fast_status == 0:
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert [c.split("--recipe ")[1].split()[0] for c in full] == ["modern", "paper"]
        assert all("--seed 5" in c for c in full)
        import tarfile

        with tarfile.open(out / "demo_paper.tgz") as tar:
            assert {"./metrics.json", "./report.md"} <= set(tar.getnames())
    else:
        assert proc.returncode != 0 and full == []
        assert "a fast demo failed" in (out / "log").read_text()
