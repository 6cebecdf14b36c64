"""The GPU benchmark script must not rot: run it small on the CPU (never timed here)."""

import json
import subprocess
import sys
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
