"""The field's retrieval table (THINGS-EEG2, 200-way zero-shot, mean over subjects) from ``align`` runs.

Each run folder of ``dreamdiffusion align --report-test`` holds ``align_config.json`` (dataset options: which
subject, or ``leave_out_subject``) and ``align_summary.json`` (test top-1 / top-5, chosen on val). Runs of one
method (the same settings apart from the subject) are averaged per setting: intra-subject and
leave-one-subject-out, the two columns every paper of the field reports. The published rows are printed above
for reference, with the numbers their papers report (ATM-S: its validation-selected numbers; its often cited
28.5 / 60.4 was selected on test).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dreamdiffusion.core.errors import DataError

PUBLISHED = (
    ("ATM-S (NeurIPS 2024), selected on validation", "26.1 / 55.3", "8.2 / 25.4"),
    ("UBP (CVPR 2025)", "50.9 / 79.7", "12.4 / 33.4"),
    ("NeuroBridge (AAAI 2026)", "63.2 / 89.9", "19.0 / 45.9"),
)
_PER_SUBJECT_KEYS = ("subject", "subjects", "leave_out_subject", "seed")


def read_align_run(folder: str | os.PathLike) -> dict:
    """``{"method", "setting", "subject", "top1", "top5", "n_way"}`` of one ``align --report-test`` run."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "align_config.json").read_text())
        summary = json.loads((folder / "align_summary.json").read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"not a finished align run ({exc})", folder) from None
    test = summary.get("test")
    if not test:
        raise DataError("this align run has no test numbers (run align with --report-test)", folder)
    options = config.get("dataset_options", {})
    loso = options.get("leave_out_subject") is not None
    method = {k: v for k, v in config.items() if k not in ("output", "dataset_options")}
    method["data"] = {k: v for k, v in options.items() if k not in _PER_SUBJECT_KEYS and v is not None}
    return {"method": json.dumps(method, sort_keys=True), "setting": "loso" if loso else "intra",
            "subject": options.get("leave_out_subject") if loso else options.get("subject", options.get("subjects")),
            "top1": float(test["top1"]), "top5": float(test["top5"]), "n_way": int(test["n_way"]),
            "arch": config.get("encoder_arch"), "what": _describe(config)}


def _describe(config: dict) -> str:
    parts = [f"{config.get('encoder_arch')} encoder", f"channels {config.get('channels') or 'all'}",
             "InfoNCE" + (f" + {config['cosine_weight']:g} x (1 - cos)" if config.get("cosine_weight") else "")]
    if config.get("target_blur"):
        parts.append(f"target blur {config['target_blur']:g}" + (" adaptive" if config.get("target_blur_adaptive") else ""))
    if config.get("target_views"):
        parts.append(f"{config['target_views']} target views")
    return ", ".join(parts) + f"; CLIP {config.get('clip')}"


def _cell(rows: list[dict]) -> str:
    if not rows:
        return "-"
    top1 = 100 * sum(r["top1"] for r in rows) / len(rows)
    top5 = 100 * sum(r["top5"] for r in rows) / len(rows)
    ways = sorted({r["n_way"] for r in rows})
    return f"{top1:.1f} / {top5:.1f} ({len(rows)} subj., {'/'.join(map(str, ways))}-way)"


def retrieval_table(folders: list) -> str:
    """Markdown: the published rows, then one row per method of ``folders`` (mean over its subjects)."""
    runs = [read_align_run(f) for f in folders]
    lines = ["| method | intra-subject | leave-one-subject-out | what it does |", "|---|---|---|---|"]
    lines += [f"| {name} (published) | {intra} | {loso} | |" for name, intra, loso in PUBLISHED]
    methods: dict[str, list[dict]] = {}
    for run in runs:
        methods.setdefault(run["method"], []).append(run)
    for i, rows in enumerate(methods.values(), start=1):
        intra = [r for r in rows if r["setting"] == "intra"]
        loso = [r for r in rows if r["setting"] == "loso"]
        lines.append(f"| this project, align #{i}, selected on val | {_cell(intra)} | {_cell(loso)} | "
                     f"{rows[0]['what']} |")
    return "\n".join(lines) + "\n"


__all__ = ["PUBLISHED", "read_align_run", "retrieval_table"]
