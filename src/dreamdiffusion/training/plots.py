"""Matplotlib figures that training runs write (Stage A reconstruction, loss curves); written atomically.

Figures are built with ``matplotlib.figure.Figure`` directly, so no GUI backend is touched and
the functions are safe in worker processes and headless CI.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from dreamdiffusion.core.files import save_figure


def _true_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in a 1-D boolean array."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def masked_only(values: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """``values`` where ``masked`` is True, NaN elsewhere (a plotted line breaks there)."""
    return np.where(np.asarray(masked, dtype=bool), np.asarray(values, dtype=np.float64), np.nan)


def plot_reconstruction(original: np.ndarray, reconstruction: np.ndarray, masked_samples: np.ndarray,
                        path: str | os.PathLike, sfreq: float | None = None,
                        channel_names: Sequence[str] | None = None, max_channels: int = 4,
                        title: str | None = None, interpolation: np.ndarray | None = None) -> Path:
    """Original vs reconstructed EEG ``[C, T]``, one panel per channel, masked spans shaded.

    ``masked_samples`` is a boolean ``[T]`` (or ``[C, T]``): True where the model saw no input and had
    to reconstruct (the only place the loss looks). ``interpolation`` ``[C, T]``, when given, is drawn
    beside the reconstruction: the straight-line guess across each gap that the model has to beat.
    Both are drawn over the masked spans only: on the visible tokens the model's output is never trained
    (MAE's loss ignores it), and drawn there it looked like spikes to zero on a signal it had in full.
    """
    original = np.asarray(original, dtype=np.float64)
    reconstruction = np.asarray(reconstruction, dtype=np.float64)
    masked_samples = np.asarray(masked_samples, dtype=bool)
    if masked_samples.ndim == 1:
        masked_samples = np.broadcast_to(masked_samples, original.shape)
    if original.shape != reconstruction.shape or original.ndim != 2 or masked_samples.shape != original.shape:
        raise ValueError(f"shapes do not match: original {original.shape}, reconstruction {reconstruction.shape}, "
                         f"mask {masked_samples.shape}")
    n_chans, n_times = original.shape
    # Show the channels with the most variance: flat ones say nothing about the reconstruction.
    shown = np.sort(np.argsort(original.std(axis=1))[::-1][:max_channels])
    t = np.arange(n_times) / sfreq if sfreq else np.arange(n_times)
    fig = Figure(figsize=(10, 1.8 * len(shown) + 0.6))
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    step = (t[1] - t[0]) if n_times > 1 else 1.0
    for ax, ch in zip(axes, shown):
        for start, stop in _true_runs(masked_samples[ch]):
            ax.axvspan(t[start], t[stop - 1] + step, color="0.85", lw=0)
        ax.plot(t, original[ch], color="tab:blue", lw=1.0, label="original")
        if interpolation is not None:
            ax.plot(t, masked_only(np.asarray(interpolation)[ch], masked_samples[ch]), color="0.35", lw=0.8,
                    ls="--", label="interpolation")
        ax.plot(t, masked_only(reconstruction[ch], masked_samples[ch]), color="tab:orange", lw=1.0,
                label="reconstruction (masked spans)")
        ax.set_ylabel(channel_names[ch] if channel_names else f"ch {ch}")
    axes[0].legend(loc="upper right", fontsize="small", ncols=3)
    axes[-1].set_xlabel("time (s)" if sfreq else "sample")
    fig.suptitle(title or f"MSM reconstruction (shaded: masked, {masked_samples.mean():.0%} of samples)")
    return save_figure(fig, path)


def plot_loss_curves(records: Sequence[dict], path: str | os.PathLike, title: str = "Stage A: masked signal modeling",
                     ylabel: str = "reconstruction MSE (masked samples)", logy: bool = True) -> Path:
    """Training loss, validation masked MSE and Pearson r against the step, from metrics records.

    Stage B's records: the train loss, its eps MSE alone beside the val MSE, and the val generated images' CLIP
    2-way (the step selection's score) where Stage A draws the Pearson r.

    Where the records hold the reference predictors (``val_mse_zero``, ``val_mse_interp``, ...) they
    are drawn as flat lines at their level: the masks are fixed, so a model below the interpolation
    line reconstructs better than a straight line across each gap. ``logy``: a log scale when every
    train loss is positive.
    """
    def series(key):
        return [(r["step"], r[key]) for r in records if r.get(key) is not None]

    train = series("loss")
    # Stage B's train loss adds the CLIP term to the diffusion MSE; its MSE alone is what the val MSE compares with
    train_mse = series("mse")
    val = series("val_mse") or series("val_loss")
    corr, corr_label = series("val_pearson_r"), "val Pearson r"
    if not corr:  # Stage B: the score its val step is chosen by
        corr, corr_label = series("val_gen_clip_2way"), "val generated images, CLIP 2-way"
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train), color="tab:blue", lw=1.0, label="train loss")
    if train_mse and train_mse != train:
        ax.plot(*zip(*train_mse), color="tab:cyan", lw=0.8, label="train eps MSE")
    if val:
        ax.plot(*zip(*val), "o-", color="tab:red", ms=3, lw=1.0, label="val MSE")
    refs = {"zero": ("0.5", ":"), "interp": ("0.2", "--")}
    for name, (color, ls) in refs.items():
        level = series(f"val_mse_{name}")
        if level:
            ax.axhline(level[-1][1], color=color, ls=ls, lw=1.0, label=f"val MSE, {name} predictor")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if logy and train and min(v for _, v in train) > 0:
        ax.set_yscale("log")
    handles, labels = ax.get_legend_handles_labels()
    if corr:
        ax2 = ax.twinx()
        ax2.plot(*zip(*corr), "s--", color="tab:green", ms=3, lw=1.0, label=corr_label)
        interp_r = series("val_pearson_r_interp")
        if interp_r:
            ax2.axhline(interp_r[-1][1], color="tab:green", ls=":", lw=1.0, label="val Pearson r, interpolation")
        ax2.set_ylabel("Pearson r" if corr_label == "val Pearson r" else "CLIP 2-way")
        if corr_label != "val Pearson r":
            ax2.set_ylim(0.5, 1.0)  # from chance: a change of 0.002 must not fill the axis
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels, loc="upper right", fontsize="x-small")
    ax.set_title(title)
    return save_figure(fig, path)
