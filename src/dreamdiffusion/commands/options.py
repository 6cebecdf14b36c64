"""Command-line options more than one command takes, declared once.

A command lists them as parameters typed with these aliases (``root: DatasetRoot = None``) and turns them into
``open_paired_dataset`` keyword options with :func:`dataset_options`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dreamdiffusion.data.pairs import paired_dataset_options

DatasetRoot = Annotated[Path | None, typer.Option(
    "--root", help="Dataset root (synthetic benchmark, THINGS-EEG2, folder; EEGCVPR40: the download folder).")]
DatasetEEG = Annotated[Path | None, typer.Option("--eeg", help="EEGCVPR40: eeg_5_95_std.pth.")]
DatasetSplits = Annotated[Path | None, typer.Option(
    "--splits", help="EEGCVPR40: block_splits_by_image_single.pth.")]
DatasetImages = Annotated[Path | None, typer.Option(
    "--images", help="Dataset image folder (EEGCVPR40: imageNet_images).")]
DatasetSubject = Annotated[str | None, typer.Option("--subject", help="Subject filter (EEGCVPR40: 4 as in the paper).")]
DatasetSplitIndex = Annotated[int | None, typer.Option("--split-index", help="EEGCVPR40 split number (0).")]
DatasetCSV = Annotated[Path | None, typer.Option(
    "--csv", help="folder dataset: CSV of eeg_file, onset, image, label (default: ROOT/pairs.csv).")]
AllowOutsideRoot = Annotated[bool, typer.Option(
    "--allow-outside-root",
    help="folder dataset: also read files whose CSV paths leave --root/--images (../, absolute).")]
ChannelMapping = Annotated[str | None, typer.Option(
    "--channel-mapping", help="How a recording's channels become the model's: repeat | montage.")]


def dataset_options(dataset: str, *, root: Path | None = None, eeg: Path | None = None, splits: Path | None = None,
                    images: Path | None = None, subject: str | None = None, split_index: int | None = None,
                    csv: Path | None = None, allow_outside_root: bool = False,
                    channel_mapping: str | None = None) -> dict:
    """The dataset options above as JSON-able keyword options of ``open_paired_dataset`` (paths as strings)."""
    options = paired_dataset_options(dataset, eeg=eeg, splits=splits, images=images, subject=subject,
                                     split_index=split_index, root=root, csv=csv, channel_mapping=channel_mapping,
                                     allow_outside_root=allow_outside_root or None)
    return {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}


__all__ = [
    "ChannelMapping",
    "DatasetCSV",
    "DatasetEEG",
    "DatasetImages",
    "DatasetRoot",
    "DatasetSplitIndex",
    "DatasetSplits",
    "DatasetSubject",
    "dataset_options",
]
