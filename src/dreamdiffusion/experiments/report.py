"""Figures and the Markdown report of an evaluation, a demo or an ablation (matplotlib, written atomically)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from dreamdiffusion.core.files import atomic_write_text, save_figure
from dreamdiffusion.data.synthetic import SyntheticPairs
from dreamdiffusion.evaluation.figures import (  # noqa: F401  (re-exported: the report's tables and grid)
    METRIC_ROWS,
    comparison_grid,
    fmt,
    headless_pyplot,
    markdown_table,
    metrics_markdown,
)

logger = logging.getLogger(__name__)


# what a refitted CLIP head reads, as the report names it (finetune --clip-head)
REFIT_INPUT = {"filters": "its frozen tokens", "eeg": "the EEG window beside the encoder"}


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
    references: dict[str, float | None] | None = None,
) -> Path:
    """Bars with error bars (mean +- spread over seeds), an optional chance line and ``references``: name -> level,
    each drawn as a dotted line (a baseline beside the bars; None: not drawn)."""
    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(labels) + 2), 3.6))
    x = np.arange(len(labels))
    ax.bar(x, means, yerr=spreads, capsize=3, color="#4C72B0")
    if chance is not None:
        ax.axhline(chance, ls="--", color="gray", lw=1, label=f"chance ({chance:.2f})")
    for (name, level), color in zip((references or {}).items(), ("#C44E52", "#55A868", "#8172B2")):
        if level is not None:
            ax.axhline(level, ls=":", color=color, lw=1.5, label=f"{name} ({level:.2f})")
    if ax.get_legend_handles_labels()[0]:
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


def stage_a_markdown(metrics: dict) -> str:
    """Stage A's val reconstruction beside the zero and interpolation predictors, and the linear probes."""
    a, b = metrics.get("stage_a") or {}, metrics.get("probe_after_stage_b") or {}
    lines = []
    if a.get("val_mse_interp") is not None:
        lines.append(markdown_table(
            ["val, masked samples", "MSM model", "interpolation", "zero"],
            [("MSE", *(f"{a[k]:.3f}" for k in ("val_mse", "val_mse_interp", "val_mse_zero"))),
             ("Pearson r", *(f"{a[k]:.3f}" for k in ("val_pearson_r", "val_pearson_r_interp", "val_pearson_r_zero")))]))
    probes = [(name, p) for name, p in (("after Stage A", a), ("after Stage B", b)) if p.get("probe_encoder") is not None]
    if probes:
        lines.append(markdown_table(
            ["linear probe (val accuracy)", "encoder", "untrained encoder", "raw binned EEG", "chance"],
            [(name, *(f"{p[k]:.3f}" for k in ("probe_encoder", "probe_random_encoder", "probe_raw_eeg", "probe_chance")))
             for name, p in probes]))
        # A start taken from the corpus (pca) is untrained but not random: say which untrained encoder each row has,
        # so a Stage A probe level with it reads as "kept", not "learned".
        lines.append("Untrained encoder: after Stage A, the start Stage A trained from (with `--patch-init pca` the "
                     "corpus' principal components, untrained); after Stage B, the same where Stage B kept the encoder's "
                     "config, else a fresh random draw of its config.")
    return "\n\n".join(lines)


# how the report names a Stage A patch-embedding start other than the paper's (xavier)
_STARTS = {"orthogonal": ", orthogonal patch start", "pca": ", patch start from the corpus' principal components"}


def _warmup_phrase(s: dict) -> str:
    """The report's words for Stage B's CLIP warm-up (the encoder's own rate there when it has one)."""
    steps = s.get("clip_warmup_steps")
    if not steps or not s.get("clip_weight"):
        return ""
    rate = s.get("clip_warmup_learning_rate") or s.get("finetune_learning_rate")
    enc = s.get("clip_warmup_encoder_learning_rate")
    enc_words = "" if enc is None else (" (the encoder held still)" if enc == 0 else f" (the encoder at {enc:g})")
    return f"; first a {steps}-step CLIP warm-up at lr {rate:g}{enc_words}, its best val-cosine step kept"


def _stage_a_options(s: dict) -> str:
    """The report's words for Stage A's options beyond the paper's that the demo settings ``s`` turned on."""
    weight, width = s.get("pretrain_visible_loss_weight"), s.get("encoder_embed_dim")
    whitening = ""
    if s.get("pretrain_patch_init") == "pca":
        whitening = " (unwhitened)" if s.get("pretrain_patch_whiten") is False else " (whitened)"
    return (whitening
            + (", the patch embedding frozen" if s.get("pretrain_freeze_patch_embed") else "")
            + (", blocks started as the identity" if s.get("pretrain_block_init") == "zero" else "")
            + (f", width {width}" if width else "") + (", no final norm" if s.get("pretrain_final_norm") is False else "")
            + (f", visible tokens rebuilt too (weight {weight:g})" if weight else "") + _stage_a_rates(s))


def _stage_a_rates(s: dict) -> str:
    """The report's words for Stage A's decoder size and the encoder's own rate, where the settings give them."""
    width, depth, rate = (s.get(k) for k in ("pretrain_decoder_embed_dim", "pretrain_decoder_depth",
                                             "pretrain_encoder_learning_rate"))
    decoder = ", ".join(w for w in (f"{width} wide" if width else "", f"{depth} blocks" if depth else "") if w)
    return (f", a decoder {decoder}" if decoder else "") + (f", the encoder at lr {rate:g}" if rate else "")


def write_demo_report(out: Path, bench: Path, encoder: Path | None, pipeline: Path, metrics: dict) -> Path:
    """``report.md``: EEG traces, MSM reconstruction, training curves, ground truth vs generated, the table."""
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    rep = Report("DreamDiffusion demo on the built-in digits benchmark")
    s = metrics["config"]["settings"]
    rep.add("What ran", "\n".join([
        f"- seed {metrics['seed']}; machine: {metrics['machine']}",
        f"- benchmark: scikit-learn digits with simulated 128-channel visual evoked EEG ({bench})",
        f"- Stage A: MSM, `{s['encoder_preset']}` encoder{', ALiBi' if s.get('pretrain_alibi') else ''}"
        f"{_STARTS.get(s.get('pretrain_patch_init'), '')}"
        f"{_stage_a_options(s)}, mask ratio "
        f"{s['mask_ratio']}, {s['pretrain_steps']} steps at lr {s.get('pretrain_learning_rate')}"
        if s["pretrain"] else "- Stage A: skipped (random encoder)",
        f"- Stage B: `builtin-tiny` base, train set `{s['train']}`, CLIP weight {s['clip_weight']}, "
        f"{s['finetune_steps']} steps, pipeline = best val step"
        + _warmup_phrase(s)
        + ("; the tokenizer started from the ridge map's spatial filters (`finetune/tokenizer_init.json`)"
           if s.get("tokenizer_init") == "ridge" else "")
        + (f"; the warm-up taught the mapper the base's caption contexts (weight {s['caption_weight']})"
           if s.get("caption_weight") else "")
        + ("; the CLIP prediction enters every context token" if s.get("clip_context") else "")
        + (f"; a shrinkage LDA on the train EEG weighs the base's class contexts into the context, sampled at "
           f"{s.get('class_context_scale', 1.0):g} x (`finetune/class_context.json`)" if s.get("class_context") else "")
        + (f"; after the warm-up a low-rank CLIP head refitted on {REFIT_INPUT[s['clip_head']]} (InfoNCE + cos, "
           "`finetune/clip_head_refit.json`)" if s.get("clip_head") in REFIT_INPUT and s.get("clip_weight") else "")
        + ("; the null context started from the base's" if s.get("null_init") == "base" else "")
        + {"layernorm": "; the encoder given a fresh final LayerNorm",
           "affine": "; the encoder's tokens scaled to unit spread by a fresh affine map (`finetune/encoder_norm.json`)",
           }.get(s.get("encoder_norm"), ""),
        f"- generation: {s['num_images']} samples per test EEG{best_of(s.get('candidates'), 'CLIP head', s.get('clip_guidance'), s.get('clip_guidance_steps'))}, "
        f"{s['steps']} DPM-Solver++ steps, guidance {metrics.get('guidance', s['guidance'])} "
        f"({metrics.get('guidance_selection', {}).get('chosen_on', 'fixed')})",
        _low_level_line(metrics.get("low_level")) + (" (not the paper's method: an addition after Stage B)"
                                                      if metrics.get("low_level") else ""),
        "- stage times (s): " + ", ".join(f"{k[:-2]} {v}" for k, v in metrics["timings_s"].items()),
    ]))
    if metrics.get("builtin_trained") is False:
        rep.add("Warning", "The `builtin-tiny` components of this checkout are random stand-ins (the trained weights "
                           "are not shipped here; run `scripts/make_builtin.py`): the judge cannot recognise digits, "
                           "so the numbers below say nothing about the method.")
    table = metrics_markdown(metrics)
    extra = []
    if metrics.get("judge_accuracy_real") is not None:
        extra.append(f"- the judge's own accuracy on the real test digits: {metrics['judge_accuracy_real']:.3f}")
    if metrics.get("linear_eeg_baseline_test") is not None:
        extra.append(f"- a linear (ridge) classifier on the raw test EEG: {metrics['linear_eeg_baseline_test']:.3f} "
                     "(how much class information the simulated EEG carries)")
    rep.add("Metrics (test split)", table + "\n".join(extra))

    test = SyntheticPairs(bench, "test")
    traces = eeg_traces(test[0]["eeg"].numpy(), float(test.sfreq), figures / "eeg_traces.png",
                        ch_names=test.ch_names, title=f"test EEG 0 ({test[0]['image_name']}, digit {test[0]['label']})")
    rep.add("EEG", "Eight of the 128 channels of one simulated trial (z-scored).", [("EEG traces", traces)], root=out)
    if encoder is not None:
        rep.add("Stage A: masked signal modeling",
                "Reconstruction of masked spans (shaded) on a held-out corpus window beside a straight line across "
                "each gap (interpolation), and the loss curve.\n\n" + stage_a_markdown(metrics),
                [("MSM reconstruction", encoder / "reconstruction.png"), ("MSM loss", encoder / "loss.png")], root=out)
    ft = Path(pipeline).parent
    rep.add("Stage B: fine-tuning", "Training loss, its diffusion (eps) MSE beside the val MSE, and the val generated "
                                          "images' CLIP 2-way, by which the best val step became the pipeline.",
            [("fine-tuning curves", ft / "loss.png")], root=out)
    rep.add("Ground truth vs generated (test split)", "First column: the image shown; then samples from its EEG.",
            [("ground truth vs generated", out / "evaluate" / "samples.png")], root=out)
    return rep.write(out / "report.md")


def best_of(candidates: int | None, ranked_by: str, clip_guidance: float | None = None,
            moves: int | None = None) -> str:
    """The report's words for ``--candidates``, ``--clip-guidance`` and ``--clip-guidance-steps`` (nothing when
    both are off)."""
    words = []
    if clip_guidance:
        per_step = f", {moves} moves per sampler step" if moves and moves > 1 else ""
        words.append(f"CLIP guidance {clip_guidance}{per_step} toward the EEG's {ranked_by}")
    if candidates and candidates > 1:
        words.append(f"each the best of {candidates} draws by CLIP cosine to the EEG's {ranked_by}")
    return f" ({'; '.join(words)})" if words else ""


def write_modern_report(out: Path, bench: Path, encoder: Path, pipeline: Path, metrics: dict) -> Path:
    """``report.md`` of ``demo --recipe modern``: what ran, the alignment's val retrieval, the table, samples."""
    s = metrics["config"]["settings"]
    align = (metrics.get("align_summary") or {}).get("val") or {}
    rep = Report("The modern recipe on the built-in digits benchmark (contrastive alignment + IP-Adapter)")
    rep.add("What ran", "\n".join([
        f"- seed {metrics['seed']}; machine: {metrics['machine']}",
        f"- benchmark: scikit-learn digits with simulated 128-channel visual evoked EEG ({bench})",
        f"- align: `{s['align_arch']}` encoder"
        + (f" ({s.get('align_spatial_filters')} spatial filters)" if s.get("align_spatial_filters") else "")
        + (" started from the ridge map" if s.get("align_init_ridge") else "")
        + ", InfoNCE" + (f" + {s.get('align_cosine_weight')} x (1 - cos)" if s.get("align_cosine_weight") else "")
        + f" against the IP-Adapter's CLIP, {s['align_steps']} steps, batch {s['align_batch_size']}, "
        f"kept step {align.get('step')} ({s.get('align_select', 'best')}; val retrieval top-1 {fmt(align.get('top1'))}, "
        f"top-5 {fmt(align.get('top5'))}, {align.get('n_way')}-way)",
        f"- generation: predicted CLIP image embedding -> `{metrics['config']['ip_adapter']}` IP-Adapter (scale "
        f"{s['ip_adapter_scale']}) on the `{metrics['config']['base']}` base, {s['num_images']} sample per test EEG"
        + best_of(s.get('modern_candidates'), 'aligned prediction', s.get('modern_clip_guidance'),
                  s.get('modern_clip_guidance_steps')) + ", "
        f"{s['steps']} DPM-Solver++ steps, guidance {metrics['guidance']} "
        f"({metrics.get('guidance_selection', {}).get('chosen_on', 'fixed')})",
        _low_level_line(metrics.get("low_level")),
        "- stage times (s): " + ", ".join(f"{k[:-2]} {v}" for k, v in metrics["timings_s"].items()),
    ]))
    extra = []
    if metrics.get("linear_eeg_baseline_test") is not None:
        extra.append(f"- a linear (ridge) classifier on the raw test EEG: {metrics['linear_eeg_baseline_test']:.3f}")
    rep.add("Metrics (test split)", metrics_markdown(metrics) + "\n".join(extra))
    rep.add("Ground truth vs generated (test split)", "First column: the image shown; then samples from its EEG.",
            [("ground truth vs generated", out / "evaluate" / "samples.png")], root=out)
    return rep.write(out / "report.md")


def _low_level_line(record: dict | None) -> str:
    """The report's line on the low-level route (ridge EEG -> VAE latents, img2img at the val-chosen strength)."""
    if not record:
        return "- low-level route: off (sampling starts from pure noise)"
    tried = ", ".join(f"{r['low_level_strength']:g}: {fmt(r['val_gen_clip_2way'])}" for r in record["records"])
    return (f"- low-level route (ATM): ridge EEG -> VAE latents fitted on {record['fit']['n_train']} train trials "
            f"(penalty {record['fit']['alpha']:g}); sampling starts from that guess noised to strength "
            f"{record['low_level_strength']:g} (1 = pure noise), chosen on val by CLIP 2-way of generated images "
            f"({tried})")


__all__ = ["write_modern_report", "atomic_write_text", "save_figure", "comparison_grid", "eeg_traces", "curves", "bar_chart",
           "markdown_table", "metrics_markdown", "Report", "fmt", "write_demo_report"]
