"""Figures and the Markdown report of an evaluation, a demo or an ablation (matplotlib, written atomically)."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from dreamdiffusion.core.files import atomic_write_text  # noqa: F401  (re-exported: callers import it from here)

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- atomic writes

def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    if "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------------------------- figures

def comparison_grid(
    ground_truth: Sequence,
    samples: Sequence[Sequence],
    path: str | os.PathLike,
    row_titles: Sequence[str] | None = None,
    max_rows: int = 12,
    title: str | None = None,
) -> Path:
    """Ground truth (first column) beside the generated samples of the same EEG (next columns)."""
    plt = _pyplot()
    n_rows = min(len(ground_truth), max_rows)
    n_cols = 1 + max((len(s) for s in samples[:n_rows]), default=0)
    height = 1.3 * n_rows + 0.5
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols, height), squeeze=False)
    fig.subplots_adjust(top=1 - 0.45 / height, bottom=0.02, hspace=0.1, wspace=0.1)  # keep the title close
    for r in range(n_rows):
        row = [ground_truth[r], *samples[r]]
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(row):
                ax.imshow(np.asarray(row[c].convert("RGB") if hasattr(row[c], "convert") else row[c]))
            else:
                ax.axis("off")
            if r == 0:
                ax.set_title("ground truth" if c == 0 else f"sample {c}", fontsize=7)
        if row_titles is not None:
            axes[r][0].set_ylabel(row_titles[r], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.1 / height)
    return save_figure(fig, path)


def eeg_traces(
    eeg,
    sfreq: float,
    path: str | os.PathLike,
    n_channels: int = 8,
    ch_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """A few channels of one EEG window [C, T], stacked, in the window's own units."""
    plt = _pyplot()
    data = np.asarray(eeg, dtype=np.float64)
    picks = np.linspace(0, data.shape[0] - 1, min(n_channels, data.shape[0])).round().astype(int)
    t = np.arange(data.shape[1]) / sfreq * 1000.0
    spacing = 3.0 * float(np.median(data[picks].std(axis=1)) or 1.0)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(picks) + 1.0))
    for i, ch in enumerate(picks):
        ax.plot(t, data[ch] - i * spacing, lw=0.7, color="k")
    ax.set_yticks([-i * spacing for i in range(len(picks))])
    ax.set_yticklabels([ch_names[c] if ch_names else f"ch {c}" for c in picks], fontsize=7)
    ax.set_xlabel("time after stimulus onset (ms)")
    ax.set_title(title or "EEG window (stacked channels)", fontsize=9)
    return save_figure(fig, path)


def curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    logy: bool = False,
) -> Path:
    """Named (x, y) line series on one axis: training and validation curves."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, (x, y) in series.items():
        if len(x):
            ax.plot(x, y, label=name, marker="o" if len(x) < 20 else None, ms=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def bar_chart(
    labels: Sequence[str],
    means: Sequence[float],
    spreads: Sequence[float] | None,
    path: str | os.PathLike,
    ylabel: str,
    chance: float | None = None,
    title: str | None = None,
) -> Path:
    """Bars with error bars (mean +- spread over seeds) and an optional chance line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(labels) + 2), 3.6))
    x = np.arange(len(labels))
    ax.bar(x, means, yerr=spreads, capsize=3, color="#4C72B0")
    if chance is not None:
        ax.axhline(chance, ls="--", color="gray", lw=1, label=f"chance ({chance:.2f})")
        ax.legend(fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------- tables

def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)


# (metrics.json key, what it is, chance level or None)
METRIC_ROWS = [
    ("top1_accuracy", "n-way top-1 semantic accuracy (mean over samples; the paper's number)", "chance"),
    ("top1_accuracy_max", "n-way top-1, best sample slot (MinD-Vis 'max' variant)", "chance"),
    ("retrieval_top1", "EEG -> image retrieval top-1 (CLIP head vs CLIP image embeddings)", "retrieval_chance_top1"),
    ("retrieval_top5", "EEG -> image retrieval top-5", "retrieval_chance_top5"),
    ("ssim", "SSIM, raw (generated vs own ground truth)", None),
    ("ssim_2way", "SSIM, 2-way identification", 0.5),
    ("pcc", "pixel correlation (PCC), raw", None),
    ("pcc_2way", "PCC, 2-way identification", 0.5),
    ("fid", "FID (torchmetrics; only with local Inception weights)", None),
    ("inception_score", "Inception score", None),
    ("judge_accuracy_real", "the judge's own top-1 accuracy on the real test images", None),
]


def metrics_markdown(metrics: Mapping) -> str:
    """The metrics table of ``metrics.json``, with chance levels and the protocol in one line."""
    rows = []
    for key, what, chance in METRIC_ROWS:
        if key not in metrics:
            continue
        chance_value = metrics.get(chance) if isinstance(chance, str) else chance
        rows.append((f"`{key}`", what, metrics[key], chance_value))
    text = markdown_table(["metric", "what", "value", "chance"], rows)
    notes = [f"n-way = {metrics.get('n_way')}, trials = {metrics.get('num_trials')}, "
             f"samples per EEG = {metrics.get('num_images')}, test EEGs = {metrics.get('num_eeg')}, "
             f"judge = `{metrics.get('classifier')}`"]
    if metrics.get("retrieval_n_way"):
        notes.append(f"retrieval: {metrics['retrieval_n_way']}-way (all test images are candidates)")
    if metrics.get("fid_skipped"):
        notes.append(f"FID/IS skipped: {metrics['fid_skipped']}")
    return text + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


# ----------------------------------------------------------------------------------------------- the report

@dataclass
class Report:
    """A Markdown document built section by section; figures are linked relative to the report's folder."""

    title: str
    sections: list[str] = field(default_factory=list)

    def add(self, heading: str, text: str = "", figures: Sequence[tuple[str, str | os.PathLike]] = (),
            root: str | os.PathLike | None = None) -> None:
        parts = [f"## {heading}", ""]
        if text:
            parts += [text.rstrip(), ""]
        for caption, fig in figures:
            if fig is None or not Path(fig).exists():
                continue
            rel = os.path.relpath(fig, root) if root is not None else os.fspath(fig)
            parts += [f"![{caption}]({Path(rel).as_posix()})", "", f"*{caption}*", ""]
        self.sections.append("\n".join(parts))

    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n".join(self.sections)

    def write(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, self.markdown())


__all__ = ["atomic_write_text", "save_figure", "comparison_grid", "eeg_traces", "curves", "bar_chart",
           "markdown_table", "metrics_markdown", "Report", "fmt"]
