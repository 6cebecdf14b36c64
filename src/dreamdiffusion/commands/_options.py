"""Options more than one command takes, declared once: the dataset options, and number options checked at the
CLI edge.

Dataset options: a command lists them as parameters typed with the aliases below (``root: DatasetRoot = None``)
and turns them into ``open_paired_dataset`` keyword options with :func:`dataset_options`.

Number options checked at the CLI edge: ``--batch-size 0``, ``--guidance nan`` or ``--onset -inf`` end in
one line that names the flag and the valid range (exit status 2) before anything is loaded.

Use ``typer.Option(..., parser=number(lo, hi))``; the check itself is
:func:`dreamdiffusion.core.config.check_number`, the one used for every config field too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dreamdiffusion.core.config import MAX_CLIP_GUIDANCE_STEPS, MAX_GUIDANCE, MAX_STEPS, check_number
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.seeding import MAX_SEED
from dreamdiffusion.data.pairs import paired_dataset_options


class Number:
    """A finite int or float in ``[lo, hi]``; NaN, infinities and out-of-range values are refused.

    Used as ``typer.Option(..., parser=Number(...))``: a ValueError's text becomes click's one-line
    ``Invalid value for '--flag': must be ...``.
    """

    def __init__(self, lo: float | None = None, hi: float | None = None, integer: bool = False):
        self.lo, self.hi, self.integer = lo, hi, integer
        self.__name__ = "integer" if integer else "number"

    def __call__(self, value):
        number = value
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            text = str(value).strip()
            try:
                number = int(text) if self.integer else float(text)
            except ValueError:
                try:
                    number = float(text)  # "1e3" for an integer, or "nan": the check says what is wrong
                except ValueError:
                    raise ValueError(f"must be {'an integer' if self.integer else 'a number'}, got {text!r}") from None
        try:
            return check_number(number, "value", self.lo, self.hi, integer=self.integer)
        except ConfigError as exc:
            raise ValueError(exc.message.removeprefix("value ")) from None


def number(lo: float | None = None, hi: float | None = None) -> Number:
    return Number(lo, hi, integer=False)


def integer(lo: int | None = None, hi: int | None = None) -> Number:
    return Number(lo, hi, integer=True)


# The ranges shared by every command.
STEPS = integer(1, MAX_STEPS)
GUIDANCE = number(1.0, MAX_GUIDANCE)
SEED = integer(0, MAX_SEED)
CLIP_GUIDANCE_STEPS = integer(1, MAX_CLIP_GUIDANCE_STEPS)  # generation.json holds no more
POSITIVE = integer(1, None)
BATCH = integer(1, 65_536)
NUM_IMAGES = integer(1, 1024)
ONSET = number(0.0, 1e9)
SFREQ = number(1e-3, 100_000.0)


# Best-of-N sampling of generate and evaluate (dreamdiffusion.steering).
Candidates = Annotated[int, typer.Option(
    "--candidates", parser=integer(1, 1024),
    help="Best-of-N: draw N candidates per image and keep the one whose CLIP embedding is closest to the EEG's "
         "predicted CLIP image embedding (MindEye's selection; the ground truth is never used). N times the "
         "sampling; 1: off.")]
CLIP_GUIDANCE_HELP = ("CLIP guidance: after every sampler step, move the latents toward a higher CLIP cosine between "
                      "their decoded image and the EEG's predicted CLIP image embedding, by this share of their norm "
                      "(e.g. 0.2; 0: off). One VAE decode and one CLIP forward and backward pass per step.")
ClipGuidanceScale = Annotated[float, typer.Option("--clip-guidance", parser=number(0.0, 1.0), help=CLIP_GUIDANCE_HELP)]
ModelClipGuidance = Annotated[float | None, typer.Option(
    "--clip-guidance", parser=number(0.0, 1.0), help=CLIP_GUIDANCE_HELP + " Default: the model's generation.json, "
                                                                          "else 0.")]
CLIP_GUIDANCE_STEPS_HELP = ("Moves of --clip-guidance per sampler step, the gradient read again before each (one VAE "
                            "decode and one CLIP forward and backward pass each): K short moves follow the prediction "
                            "more closely than one long one.")
ClipGuidanceSteps = Annotated[int, typer.Option("--clip-guidance-steps", parser=CLIP_GUIDANCE_STEPS,
                                                help=CLIP_GUIDANCE_STEPS_HELP)]
ModelClipGuidanceSteps = Annotated[int | None, typer.Option(
    "--clip-guidance-steps", parser=CLIP_GUIDANCE_STEPS, help=CLIP_GUIDANCE_STEPS_HELP + " Default: the model's "
                                                                                     "generation.json, else 1.")]


LowLevelStrength = Annotated[float | None, typer.Option(
    "--low-level-strength", parser=number(0.0, 1.0),
    help="Models whose EEG model guesses the image's latents (the modern demo's): start sampling from that guess "
         "noised to this share of the schedule (img2img; 1: pure noise). Default: the model's generation.json, else 1.")]


# The conditioning route of generate, evaluate, app and stream (conditioning.plan_conditioning).
Conditioning = Annotated[str, typer.Option(
    "--conditioning",
    help="auto | tokens | ip-adapter. auto: the route the pipeline was saved with (an aligned encoder: ip-adapter). "
         "ip-adapter on an aligned encoder, or on a tokens pipeline (through its CLIP head), builds the pipeline on "
         "the fly from --base and --ip-adapter.")]
IPBase = Annotated[str | None, typer.Option(
    "--base", help="Stable Diffusion base of an ip-adapter pipeline built on the fly (folder, hub id or "
                         "builtin-tiny; default: the base a tokens pipeline was fine-tuned from, else builtin-tiny).")]
IPAdapter = Annotated[str | None, typer.Option(
    "--ip-adapter", help="IP-Adapter of a pipeline built on the fly: builtin-tiny (default), h94/IP-Adapter "
                               "(SD 1.5) or a folder laid out like either.")]


# The dataset options of finetune, generate and evaluate.
DatasetRoot = Annotated[Path | None, typer.Option(
    "--root", help="Dataset root (synthetic benchmark, THINGS-EEG2, folder; EEGCVPR40: the download folder).")]
DatasetEEG = Annotated[Path | None, typer.Option("--eeg", help="EEGCVPR40: eeg_5_95_std.pth.")]
DatasetSplits = Annotated[Path | None, typer.Option(
    "--splits", help="EEGCVPR40: block_splits_by_image_single.pth.")]
DatasetImages = Annotated[Path | None, typer.Option(
    "--images", help="Dataset image folder (EEGCVPR40: imageNet_images).")]
DatasetSubject = Annotated[str | None, typer.Option("--subject", help="Subject filter (EEGCVPR40: 4 as in the paper).")]
DatasetSplitIndex = Annotated[int | None, typer.Option("--split-index", parser=integer(0, 10_000),
                                                      help="EEGCVPR40 split number (0).")]
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
                    channel_mapping: str | None = None, **extra) -> dict:
    """The dataset options above as JSON-able keyword options of ``open_paired_dataset`` (paths as strings);
    ``extra`` (a command's dataset-specific options, e.g. align's THINGS-EEG2 ones) passes through."""
    options = paired_dataset_options(dataset, eeg=eeg, splits=splits, images=images, subject=subject,
                                     split_index=split_index, root=root, csv=csv, channel_mapping=channel_mapping,
                                     allow_outside_root=allow_outside_root or None, **extra)
    return {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
