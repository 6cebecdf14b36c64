"""How much decodable information is lost when the 128-channel built-in benchmark is seen
through a consumer headset (32, 16, 14 Emotiv, 8, 4 Muse channels) and mapped back onto the
128-channel cap by electrode position (``dreamdiffusion.app.devices.simulate_headset``).

The judge is the benchmark's linear ERP decoder (``data.transforms.binned_means`` + the ridge classifier of
``core.ridge.RidgeSearch``, penalty chosen on train by leave-one-image-out),
trained once on the full 128-channel train split, and scored on the test split after each
headset simulation: the situation of a model trained on 128 channels fed by a smaller headset.

    .venv/bin/python benchmarks/channel_drop.py --output benchmarks/channel_drop.json

With ``--pipeline RUN`` (a pipeline trained on the same benchmark seed, e.g. ``runs/demo`` of ``dreamdiffusion demo``)
each headset is also seen the way its own recording would be: the cap channels nearest its electrodes, called by the
headset's 10-05 names, mapped onto the model's channels as a file is (``data.transforms.channel_map`` with the
pipeline's ``preprocessing.json``); the linear decoder scores that EEG (``accuracy_recording``), and the pipeline draws
one image per test EEG at its own recommended settings (``generation.json``), which the built-in judge names
(``image_top1``: the demo's n-way top-1; the full cap's row is the demo's own number).
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


def recording_matrix(cap: list[str], layout, spec) -> np.ndarray:
    """``W [n_chans, len(cap)]``: the cap channels nearest the layout's electrodes, named as the headset names them,
    through the recording path's channel mapping (what ``generate --eeg-file`` does with that headset's file)."""
    from dreamdiffusion.app.devices import nearest_channels
    from dreamdiffusion.data.synthetic import MONTAGE
    from dreamdiffusion.data.transforms import channel_map

    keep = nearest_channels(list(layout.ch_names), cap, MONTAGE)  # in the layout's order
    w = np.zeros((spec.n_chans, len(cap)))
    w[:, [cap.index(c) for c in keep]] = channel_map(list(layout.ch_names), spec, layout.name)
    return w


class ImageJudge:
    """A pipeline's images of EEG windows at its recommended settings, named by the built-in judge."""

    def __init__(self, run: Path):
        from dreamdiffusion.evaluation.classifier import ImageClassifier
        from dreamdiffusion.generation import load_pipeline, resolve_generation_settings, steering
        from dreamdiffusion.pipeline import resolve_pipeline_folder

        folder = resolve_pipeline_folder(run)
        self.pipe = load_pipeline(folder, device="cpu")
        self.pipe.set_progress_bar_config(disable=True)
        self.spec = self.pipe.input_spec()
        used = resolve_generation_settings(self.pipe)  # the model's recommendations, as generate uses them
        self.settings = {k: used.get(k) for k in ("steps", "guidance", "clip_guidance", "low_level_strength")}
        self.guide = steering(1, self.settings["clip_guidance"], None, folder)[1]
        self.judge = ImageClassifier.load("builtin-tiny")

    def top1(self, eeg: np.ndarray, labels: np.ndarray, seed: int) -> float:
        import torch

        from dreamdiffusion.generation import draw_images

        s = self.settings
        images = draw_images(self.pipe, torch.from_numpy(np.ascontiguousarray(eeg, dtype=np.float32)), 1, s["steps"],
                             s["guidance"], seed, batch_size=16, progress=True, guidance_clip=self.guide,
                             low_level_strength=s["low_level_strength"])
        named = np.asarray(self.judge.labels)[self.judge.logits([im[0] for im in images]).argmax(1).numpy()]
        return float((named == labels).mean())


def main(argv: list[str] | None = None) -> dict:
    from dreamdiffusion.app.devices import get_layout
    from dreamdiffusion.core.ridge import RidgeSearch
    from dreamdiffusion.data.synthetic import MONTAGE, SyntheticPairs, build_benchmark
    from dreamdiffusion.data.transforms import binned_means

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", type=Path, default=None,
                        help="where the benchmark is built (default: the temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--pipeline", type=Path, default=None,
                        help="also draw images through each headset with this pipeline (trained on --seed's benchmark)")
    args = parser.parse_args(argv)

    t0 = time.time()
    if args.pipeline:  # the benchmark the demo trained its pipeline on (its subjects, trials and centring)
        from dreamdiffusion.experiments.settings import DemoSettings

        params = {**DemoSettings().benchmark_params(), "n_corpus_windows": 0}
    else:
        params = {"n_corpus_windows": 0}
    folder = args.benchmark or Path(tempfile.gettempdir()) / f"dd-{'demo-' if args.pipeline else ''}benchmark-seed{args.seed}"
    root = build_benchmark(folder, seed=args.seed, **params)
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
    judge = ImageJudge(args.pipeline) if args.pipeline else None
    if judge is not None:
        results["128 (full cap)"].update(accuracy_recording=full, image_top1=judge.top1(xte, yte, args.seed))
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
        if judge is not None:
            as_file = np.einsum("ij,njt->nit", recording_matrix(names, layout, judge.spec).astype(np.float32), xte)
            results[name].update(accuracy_recording=float((clf.predict(binned_means(as_file, 16)) == yte).mean()),
                                 image_top1=judge.top1(as_file, yte, args.seed))
    out = {"benchmark": str(root), "seed": args.seed, "n_train": int(len(ytr)), "n_test": int(len(yte)),
           "chance": 0.1, "judge": "ridge classifier on time-binned EEG; accuracy: trained on all 128 channels, "
                    "accuracy_retrained: trained on the headset's mapped train EEG",
           "pipeline": str(args.pipeline) if judge else None,
           "image_settings": judge.settings if judge else None,
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
