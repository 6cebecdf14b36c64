"""Figures and the Markdown report of an evaluation, a demo or an ablation (matplotlib, written atomically)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dreamdiffusion.core.files import atomic_write_text, save_figure
from dreamdiffusion.evaluation.figures import (  # noqa: F401  (re-exported: the report's tables and grid)
    METRIC_ROWS, headless_pyplot, comparison_grid, fmt, markdown_table, metrics_markdown)

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- figures

def eeg_traces(
    eeg,
    sfreq: float,
    path: str | os.PathLike,
    n_channels: int = 8,
    ch_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """A few channels of one EEG window [C, T], stacked, in the window's own units."""
    plt = headless_pyplot()
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
    plt = headless_pyplot()
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
    plt = headless_pyplot()
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
