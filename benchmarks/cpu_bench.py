"""CPU benchmark of the EEG input side: corpus read throughput, memory at two corpus sizes, and
``tiny`` masked-signal-model training steps per second.

    .venv/bin/python benchmarks/cpu_bench.py [--sizes 2048 8192] [--workdir /tmp/dd-bench]
                                             [--batch-size 256] [--steps 30] [--json out.json]

What each number is:

* read windows/s: windows of 128 x 512 float32 per second through a ``torch.utils.data.DataLoader``
  over ``CorpusDataset`` (shuffled, batch 256; the dataset's ``__getitems__`` copies each window
  once from the memory maps into the batch), for 0 and 2 worker processes, with
  ``collate_fn=collate_windows`` (the batch as built) and with the default collate (one more
  copy). The corpus was just written, so the page cache is warm: this is the loader's own cost,
  not the disk's.
* memory: for each corpus size, a fresh process reads the *whole* corpus once through the
  DataLoader and reports its peak resident set (VmHWM) split at the end into anonymous memory
  (RssAnon: what the process itself holds) and mapped file pages (RssFile: page cache seen through
  the memory maps, shared and reclaimable). Flat anonymous memory across sizes = streaming.
  The writer is measured the same way (peak RSS while streaming the corpus to disk).
* tiny MSM steps/s: ``MaskedSignalModel.from_preset("tiny")`` (128 x 512 input), AdamW, batch 32,
  mask ratio 0.75, forward + backward + step, after 3 warm-up steps.

The corpora hold random windows: reading speed does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dreamdiffusion.core.machine import machine_description

N_CHANS, N_TIMES = 128, 512


def _status() -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0]) / 1024  # MiB
    return out


def write_corpus(root: Path, n_windows: int, chunk: int = 256) -> dict:
    """Stream ``n_windows`` random windows into a corpus; return the writer's memory and time."""
    from dreamdiffusion.data.corpus import CorpusWriter

    rng = np.random.default_rng(0)
    block = rng.standard_normal((chunk, N_CHANS, N_TIMES), dtype=np.float32)
    t0 = time.perf_counter()
    w = CorpusWriter(root, N_CHANS, N_TIMES, 512 / 0.44, overwrite=True)
    done = 0
    rec = 0
    while done < n_windows:
        n = min(chunk, n_windows - done)
        block[:, 0, 0] = np.arange(done, done + n)  # windows differ, cheaply
        w.add(block[:n], source=f"bench-{rec}", subject=f"sub-{rec % 10}", sfreq_original=256.0,
              n_chans_original=N_CHANS)
        done += n
        rec += 1
    w.close()
    return {"seconds": time.perf_counter() - t0, **_status()}


def read_throughput(root: Path, batch_size: int, workers: int, max_windows: int | None = None,
                    fast_collate: bool = True) -> dict:
    from dreamdiffusion.data.corpus import CorpusDataset, collate_windows

    ds = CorpusDataset(root, "all")
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         generator=g, persistent_workers=False,
                                         collate_fn=collate_windows if fast_collate else None)
    n = 0
    t0 = time.perf_counter()
    checksum = 0.0
    for batch in loader:
        assert batch.shape[1:] == (N_CHANS, N_TIMES)
        checksum += float(batch[:, 0, 0].sum())  # touch the data
        n += len(batch)
        if max_windows and n >= max_windows:
            break
    dt = time.perf_counter() - t0
    return {"windows": n, "seconds": dt, "windows_per_s": n / dt, "MiB_per_s": n * N_CHANS * N_TIMES * 4 / dt / 2**20,
            **_status()}


def memcpy_reference(mib: int = 64, repeats: int = 5) -> dict:
    """This machine's plain copy speed right now (numpy, one thread): the ceiling of any loader
    that copies each window once. On a shared machine it moves with the load."""
    a = np.ones(mib * 2**20 // 4, dtype=np.float32)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    # The same copy into a freshly allocated batch, as a loader must do (the consumer keeps each
    # batch): first-touch page faults of the new buffer are part of the cost.
    src = np.ones((256, N_CHANS, N_TIMES), dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(repeats):
        dst = torch.empty(src.shape).numpy()
        for j in range(len(src)):
            dst[j] = src[j]
    fresh = repeats * len(src) / (time.perf_counter() - t0)
    return {"MiB_per_s": mib / best, "windows_per_s_ceiling": mib * 2**20 / (N_CHANS * N_TIMES * 4) / best,
            "fresh_batch_windows_per_s": fresh}


def msm_steps(steps: int, batch_size: int = 32, threads: int | None = None) -> dict:
    from dreamdiffusion.models.eeg_encoder import MaskedSignalModel

    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _msm_steps(MaskedSignalModel, steps, batch_size)
    finally:
        torch.set_num_threads(old)


def _msm_steps(MaskedSignalModel, steps: int, batch_size: int) -> dict:
    torch.manual_seed(0)
    model = MaskedSignalModel.from_preset("tiny")
    opt = torch.optim.AdamW(model.parameters(), lr=2.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    x = torch.randn(batch_size, model.encoder.config.n_chans, model.encoder.config.n_times)
    g = torch.Generator().manual_seed(0)

    def step():
        loss, _, _ = model(x, mask_ratio=0.75, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    losses = [step() for _ in range(steps)]
    dt = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    return {"steps": steps, "batch_size": batch_size, "steps_per_s": steps / dt,
            "windows_per_s": steps * batch_size / dt, "params": n_params, "loss_first": losses[0],
            "loss_last": losses[-1]}


def _child(args) -> None:
    """Runs in a fresh process so each memory number is its own peak."""
    root = Path(args.child_root)
    if args.child == "write":
        out = write_corpus(root, args.child_n)
    else:
        out = read_throughput(root, args.batch_size, 0, fast_collate=True)
    print(json.dumps(out))


def _in_child(kind: str, root: Path, n: int, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--child-root", str(root), "--child-n", str(n),
           "--batch-size", str(batch_size)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{machine_description()}, {mem:.0f} GiB RAM, {torch.get_num_threads()} torch threads"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[2048, 8192], help="two corpus sizes, in windows")
    ap.add_argument("--workdir", default="/tmp/dd-cpu-bench")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=30, help="timed tiny MSM steps")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the benchmark corpora")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-root", help=argparse.SUPPRESS)
    ap.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    torch.set_num_threads(min(2, torch.get_num_threads()))
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    results = {"machine": _machine(), "load_before": os.getloadavg(), "sizes": {}}
    try:
        for n in args.sizes:
            root = work / f"corpus-{n}"
            w = _in_child("write", root, n, args.batch_size)
            r = _in_child("read", root, n, args.batch_size)
            results["sizes"][n] = {"GiB": n * N_CHANS * N_TIMES * 4 / 2**30, "write": w, "read": r}
        big = work / f"corpus-{args.sizes[-1]}"
        results["throughput"] = {
            f"workers={k}, {'collate_windows' if fast else 'default collate'}": read_throughput(
                big, args.batch_size, k, fast_collate=fast)
            for k in (0, 2) for fast in (True, False)}
        results["memcpy"] = memcpy_reference()
        results["msm_tiny"] = {f"{t} thread{'s' if t > 1 else ''}": msm_steps(args.steps, threads=t) for t in (1, 2)}
        results["load_after"] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"machine: {results['machine']}")
    print(f"load average (1/5/15 min) before: {'/'.join(f'{x:.1f}' for x in results['load_before'])}, "
          f"after: {'/'.join(f'{x:.1f}' for x in results['load_after'])}")
    print()
    print("| measure | value |")
    print("|---|---|")
    for k, v in results["throughput"].items():
        print(f"| corpus read, DataLoader {k}, batch {args.batch_size} | {v['windows_per_s']:,.0f} windows/s "
              f"({v['MiB_per_s']:,.0f} MiB/s) |")
    for n, s in results["sizes"].items():
        r, w = s["read"], s["write"]
        print(f"| read whole corpus of {n} windows ({s['GiB']:.2f} GiB): peak RSS / anon / file-backed | "
              f"{r['VmHWM']:,.0f} / {r['RssAnon']:,.0f} / {r['RssFile']:,.0f} MiB |")
        print(f"| write corpus of {n} windows: peak RSS / time | {w['VmHWM']:,.0f} MiB / {w['seconds']:.1f} s |")
    c = results["memcpy"]
    print(f"| reference: one-thread memcpy right now | {c['MiB_per_s']:,.0f} MiB/s "
          f"(= {c['windows_per_s_ceiling']:,.0f} windows/s into a warm buffer) |")
    print(f"| reference: copy windows into a freshly allocated batch (no disk, no loader) | "
          f"{c['fresh_batch_windows_per_s']:,.0f} windows/s |")
    for label, m in results["msm_tiny"].items():
        print(f"| tiny MSM train steps (batch {m['batch_size']}, AdamW, {m['params']:,} params, {label}) | "
              f"{m['steps_per_s']:.2f} steps/s ({m['windows_per_s']:.0f} windows/s) |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
