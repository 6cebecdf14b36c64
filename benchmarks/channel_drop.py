"""How much decodable information is lost when the 128-channel built-in benchmark is seen
through a consumer headset (32, 16, 14 Emotiv, 8, 4 Muse channels) and mapped back onto the
128-channel cap by electrode position (``dreamdiffusion.app.devices.simulate_headset``).

The judge is the benchmark's linear ERP decoder (``data.transforms.binned_means`` + the ridge classifier of
``core.ridge.RidgeSearch``, penalty chosen on train by leave-one-image-out),
trained once on the full 128-channel train split, and scored on the test split after each
headset simulation: the situation of a model trained on 128 channels fed by a smaller headset.

    .venv/bin/python benchmarks/channel_drop.py --output benchmarks/channel_drop.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

LAYOUTS = ("10-20-32", "10-20-16", "emotiv-epoc", "10-20-8", "openbci-cyton", "muse")


def mapping_matrix(ch_names: list[str], layout, montage: str) -> np.ndarray:
    """``W [128, 128]`` with ``simulate_headset(x) == W @ x``: spline interpolation is linear,
    so mapping the identity gives the matrix once instead of interpolating every trial."""
    from dreamdiffusion.app.devices import simulate_headset

    return simulate_headset(np.eye(len(ch_names)), ch_names, layout, montage=montage)


def main(argv: list[str] | None = None) -> dict:
    from dreamdiffusion.app.devices import get_layout
    from dreamdiffusion.core.ridge import RidgeSearch
    from dreamdiffusion.data.synthetic import MONTAGE, SyntheticPairs, build_benchmark
    from dreamdiffusion.data.transforms import binned_means

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", type=Path, default=Path(tempfile.gettempdir()) / "dd-benchmark-seed0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    t0 = time.time()
    root = build_benchmark(args.benchmark, seed=args.seed, n_corpus_windows=0)
    train, test = SyntheticPairs(root, "train"), SyntheticPairs(root, "test")

    def arrays(ds):
        idx = np.sort(ds.indices)
        return np.asarray(ds._eeg[idx], dtype=np.float32), ds.labels[ds.trial_image[idx]].astype(str)

    xtr, ytr = arrays(train)
    xte, yte = arrays(test)
    images = train.trial_image[np.sort(train.indices)]  # the penalty is chosen holding out all trials of an image
    clf = RidgeSearch(binned_means(xtr, 16), images).fit(ytr, classify=True)
    names = list(train.ch_names)
    full = float((clf.predict(binned_means(xte, 16)) == yte).mean())
    results = {"128 (full cap)": {"n_channels": 128, "accuracy": full, "accuracy_retrained": full}}
    for name in LAYOUTS:
        layout = get_layout(name)
        w = mapping_matrix(names, layout, MONTAGE).astype(np.float32)
        mapped = np.einsum("ij,njt->nit", w, xte)
        acc = float((clf.predict(binned_means(mapped, 16)) == yte).mean())
        # Upper bound for adapting to the headset (a decoder trained on mapped data, as a channel
        # adapter fine-tuned on the user's own recordings would approach).
        own = RidgeSearch(binned_means(np.einsum("ij,njt->nit", w, xtr), 16), images).fit(ytr, classify=True)
        acc_own = float((own.predict(binned_means(mapped, 16)) == yte).mean())
        results[name] = {"n_channels": layout.n_chans, "accuracy": acc, "accuracy_retrained": acc_own}
    out = {"benchmark": str(root), "seed": args.seed, "n_train": int(len(ytr)), "n_test": int(len(yte)),
           "chance": 0.1, "judge": "ridge classifier on time-binned EEG; accuracy: trained on all 128 channels, "
                    "accuracy_retrained: trained on the headset's mapped train EEG",
           "results": results, "seconds": round(time.time() - t0, 1)}
    text = json.dumps(out, indent=2)
    if args.output:
        tmp = args.output.with_name(args.output.name + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.output)
    print(text)
    return out


if __name__ == "__main__":
    main()
