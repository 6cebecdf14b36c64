"""What ``evaluate`` writes besides the numbers: the ground truth vs generated figure and the metrics table."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from dreamdiffusion.core.files import save_figure


def headless_pyplot():
    """pyplot on the Agg backend (files only; never needs a display) unless the user chose one."""
    import matplotlib

    if "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
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
    plt = headless_pyplot()
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
    ("clip_2way", "CLIP 2-way identification (generated image vs own / other truth, cosine)", 0.5),
    ("clip_within_class_2way", "CLIP 2-way within the own class (a class lookup scores 0.5)", 0.5),
    ("embed_2way", "CLIP 2-way of the EEG's predicted embedding itself (before any image is drawn)", 0.5),
    ("embed_within_class_2way", "the same, within the own class (as baseline_ridge_clip's within-class 2-way)", 0.5),
    ("ssim_within_class_2way", "SSIM 2-way within the own class", 0.5),
    ("pcc_within_class_2way", "PCC 2-way within the own class", 0.5),
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
    text = text + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    if "baseline_ridge_class" in metrics or "baseline_ridge_clip" in metrics:
        text += "\n" + baselines_markdown(metrics)
    return text


# (key, what, chance): the rows of the method-beside-baselines table
BASELINE_ROWS = [
    ("top1_accuracy", "n-way top-1 (judge)", "chance"),
    ("retrieval_top1", "retrieval top-1", "retrieval_chance_top1"),
    ("retrieval_top5", "retrieval top-5", "retrieval_chance_top5"),
    ("clip_2way", "CLIP 2-way", 0.5),
    ("clip_within_class_2way", "CLIP 2-way within class", 0.5),
    # the method's predicted embedding beside the ridge's (the ridge column reads its clip_* key: see RIDGE_KEY)
    ("embed_within_class_2way", "CLIP 2-way within class, the predicted embedding itself", 0.5),
    ("pcc_within_class_2way", "PCC 2-way within class", 0.5),
    ("ssim_within_class_2way", "SSIM 2-way within class", 0.5),
    ("ssim_2way", "SSIM 2-way", 0.5),
    ("pcc_2way", "PCC 2-way", 0.5),
]


# The ridge -> CLIP baseline has no generated images: its embedding is scored under the clip_* keys, which for the
# method score the generated images. A method row of its predicted embedding reads the ridge's clip_* value.
RIDGE_KEY = {"embed_within_class_2way": "clip_within_class_2way"}


def baselines_markdown(metrics: Mapping) -> str:
    """The method beside chance and the project's baselines (``evaluation/baselines.py``), one row per metric."""
    klass = metrics.get("baseline_ridge_class") or {}
    ridge = metrics.get("baseline_ridge_clip") or {}
    rows = []
    for key, what, chance in BASELINE_ROWS:
        ridge_key = RIDGE_KEY.get(key, key)
        if metrics.get(key) is None and klass.get(key) is None and ridge.get(ridge_key) is None:
            continue
        chance_value = metrics.get(chance) if isinstance(chance, str) else chance
        rows.append((what, metrics.get(key), klass.get(key), ridge.get(ridge_key), chance_value))
    text = ("**Beside the baselines** (fitted on the train split, scored as the method):\n\n"
            + markdown_table(["metric", "method", "ridge -> class lookup", "ridge -> CLIP embedding", "chance"],
                             rows))
    notes = []
    if klass:
        notes.append(f"ridge -> class lookup: a ridge classifier on binned train EEG (its test accuracy "
                     f"{fmt(klass.get('eeg_accuracy'))}) picks the class; the base draws it from its own class "
                     f"conditioning (guidance {klass.get('guidance')}, {klass.get('steps')} steps, the method's noise)")
        if klass.get("lda_eeg_accuracy") is not None:
            notes.append(f"shrinkage LDA on the same features names the test EEG's class at "
                         f"{fmt(klass['lda_eeg_accuracy'])} (the discriminant beside the lookup's ridge classifier, which "
                         f"regresses on class indicators; no images drawn)")
    margins = metrics.get("baseline_ridge_clip_margins") or {}
    if margins:
        first = next(iter(margins.values()))
        words = {k: w for k, w, _ in BASELINE_ROWS}
        notes.append(f"method minus ridge -> CLIP embedding, with the 95 % interval of a paired bootstrap over the "
                     f"{first['n_groups']} distinct test images ({first['n_boot']} draws; an interval that holds 0 "
                     f"is a difference the test split cannot tell from none): " + margins_text(margins, words))
    for key in ("baseline_ridge_class_skipped", "baseline_ridge_clip_skipped"):
        if metrics.get(key):
            notes.append(f"{key[:-8]} skipped: {metrics[key]}")
    return text + "\n\n" + "".join(f"- {n}\n" for n in notes)


def margins_text(margins: Mapping, names: Mapping | None = None, digits: int = 3) -> str:
    """``baseline_ridge_clip_margins`` in one line: ``NAME +0.021 [+0.005, +0.038]; ...`` (``names``: words per
    metric key, default the keys)."""
    sign = lambda v: f"{v:+.{digits}f}"
    return "; ".join(f"{(names or {}).get(key, key)} {sign(m['difference'])} [{sign(m['low'])}, {sign(m['high'])}]"
                     for key, m in margins.items())


__all__ = ["headless_pyplot", "comparison_grid", "markdown_table", "metrics_markdown", "fmt", "METRIC_ROWS",
           "baselines_markdown", "BASELINE_ROWS", "RIDGE_KEY", "margins_text"]
