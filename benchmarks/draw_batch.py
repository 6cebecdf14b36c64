"""Seconds per test image against the generation batch size, at the demo's sampling settings, on a finished run.

    python benchmarks/draw_batch.py --run runs/demo --sizes 16,32,64,128

Loads ``RUN``'s fine-tuned pipeline (``RUN/finetune*/pipeline``: a demo's, or ``head_val.py --images``'s seed folder),
draws the first ``--n`` val EEGs of ``RUN/benchmark`` at each batch size twice (6 DPM-Solver++ steps, guidance 5, CLIP
guidance 0.07 in 3 moves, the pipeline's own low-level strength: the paper demo's test settings) and prints the
seconds, the milliseconds an image and the largest pixel difference from the first size's images (each image has its
own seeded generator, so only rounding may differ). Behind ``DemoSettings.eval_batch_size``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dreamdiffusion.conditioning import plan_conditioning
from dreamdiffusion.data.synthetic import SyntheticPairs
from dreamdiffusion.generation import draw_images, load_pipeline, steering


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a demo run folder (with benchmark/ and finetune*/pipeline)")
    ap.add_argument("--n", type=int, default=128, help="val EEGs drawn at each size")
    ap.add_argument("--sizes", default="16,32,64,128")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    run = Path(args.run)
    pipelines = sorted(run.glob("finetune*/pipeline"))
    if not pipelines:
        raise SystemExit(f"{run}: no finetune*/pipeline folder (run the demo first)")
    val = SyntheticPairs(run / "benchmark", "val")
    eegs = [val.eeg(i) for i in range(min(args.n, len(val)))]
    pipe = load_pipeline(plan_conditioning(str(pipelines[0]), "auto", None, None), None, device="cpu")
    _, guide = steering(1, 0.07, None, str(pipelines[0]), "cpu", 3)
    print(f"{pipelines[0]}: {len(eegs)} val EEGs, torch threads {torch.get_num_threads()}")
    first = None
    for rep in range(args.repeats):
        for size in map(int, args.sizes.split(",")):
            t0 = time.perf_counter()
            drawn = draw_images(pipe, eegs, 1, 6, 5.0, 4, batch_size=size, guidance_clip=guide)
            seconds = time.perf_counter() - t0
            pixels = np.stack([np.asarray(row[0], dtype=np.int16) for row in drawn])
            first = pixels if first is None else first
            print(f"repeat {rep + 1}, batch {size}: {seconds:.2f} s, {seconds / len(eegs) * 1000:.1f} ms an image, "
                  f"largest pixel difference from the first {int(np.abs(pixels - first).max())}", flush=True)


if __name__ == "__main__":
    main()
