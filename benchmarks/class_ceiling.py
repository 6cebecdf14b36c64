"""Does any decoder name the digit better than the ridge classifier on the binned raw EEG? Val only.

    python benchmarks/class_ceiling.py runs/demo/benchmark runs/other/benchmark --output class_ceiling.json

The demos' `ridge -> class` lookup (a ridge classifier on time-binned EEG, its digit drawn by the base's own class
conditioning) is ahead of both recipes on n-way top-1. This asks whether that is the benchmark's ceiling for naming
the digit rather than a weak method: on each benchmark folder (any the demo built), fit on the train trials and
score the val trials with the ridge classifier as the demo fits it (`evaluation.probe.ridge_accuracy`, the
image-grouped search of its penalty) and with other decoders, linear and not: shrinkage LDA (the Bayes rule where
each class is a Gaussian with one shared covariance; `evaluation.baselines.fit_lda`, which `evaluate` reports
beside the lookup as `lda_eeg_accuracy`), logistic regression, a one-hidden-layer MLP (early stopping on
a tenth of train) and k-nearest neighbours; logistic regression and the MLP get the best of three penalties on val
itself, which favours them. The test split is never read. A few minutes per benchmark on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from dreamdiffusion.core.files import atomic_write_json
from dreamdiffusion.core.machine import machine_description
from dreamdiffusion.data.synthetic import SyntheticPairs
from dreamdiffusion.evaluation.baselines import N_BINS, eeg_feature_matrix, fit_lda
from dreamdiffusion.evaluation.probe import ridge_accuracy


def split_arrays(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned features ``[N, C * N_BINS]`` (the baselines' 8 time bins), labels and image index of one split's trials."""
    data = SyntheticPairs(root, split)
    x = eeg_feature_matrix([data._eeg[i] for i in data.indices], N_BINS)
    images = data.trial_image[data.indices]
    return x, data.labels[images], images


def score(root: Path, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier

    xt, yt, groups = split_arrays(root, "train")
    xv, yv, _ = split_arrays(root, "val")
    row = {"benchmark": str(root), "n_train": len(yt), "n_val": len(yv), "seconds": {}}
    t = time.perf_counter()
    row["ridge (the demo's)"] = ridge_accuracy(xt, yt, xv, yv, groups=groups)
    row["seconds"]["ridge (the demo's)"] = round(time.perf_counter() - t, 1)
    # One scale for every feature, not per-feature z-scores: those lift the near-silent noise-only channels to the
    # level of the informative ones (evaluation.probe.ridge_accuracy says by how much for the ridge).
    scale = float(xt.std()) or 1.0
    xt, xv = xt / scale, xv / scale
    t = time.perf_counter()
    row["shrinkage LDA"] = float(np.mean(fit_lda(xt, yt).predict(xv) == yv.astype(str)))  # evaluate's own
    row["seconds"]["shrinkage LDA"] = round(time.perf_counter() - t, 1)
    decoders = {"logistic regression (best C of 3 on val)": [LogisticRegression(C=c, max_iter=3000)
                                                             for c in (1e-3, 1e-2, 1e-1)],
                "MLP, 512 hidden (best penalty of 3 on val)": [MLPClassifier(
                    (512,), alpha=a, early_stopping=True, validation_fraction=0.1, max_iter=300, random_state=seed)
                    for a in (1e-2, 1.0, 10.0)],
                "kNN, k=15": [KNeighborsClassifier(15)]}
    for name, models in decoders.items():
        t = time.perf_counter()
        # the best of a few settings on val itself: an optimistic bound for these decoders, not a fair score
        row[name] = max(float(np.mean(m.fit(xt, yt).predict(xv) == yv)) for m in models)
        row["seconds"][name] = round(time.perf_counter() - t, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("benchmarks", nargs="+", type=Path, help="benchmark folders (runs/demo/benchmark, ...)")
    ap.add_argument("--output", type=Path, required=True, help="JSON file for every row")
    ap.add_argument("--seed", type=int, default=0, help="the MLP's initialisation")
    args = ap.parse_args(argv)
    rows = []
    for root in args.benchmarks:
        rows.append(score(root, args.seed))
        print(" | ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()
                         if k != "seconds"), flush=True)
    atomic_write_json(args.output, {"rows": rows, "machine": machine_description(), "split": "val"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
