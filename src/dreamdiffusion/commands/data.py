"""CLI: ``dreamdiffusion data inspect | build-corpus | make-sample``, thin wrappers over
:mod:`dreamdiffusion.data.io` and :func:`dreamdiffusion.data.corpus.build_corpus`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from dreamdiffusion.commands._options import POSITIVE, SEED, SFREQ, integer
from dreamdiffusion.core.constants import PAPER_SFREQ
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.data.corpus import build_corpus, read_manifest
from dreamdiffusion.data.io import inspect_recording, write_sample
from dreamdiffusion.data.transforms import InputSpec

data_app = typer.Typer(help="EEG files: inspect them, build a pretraining corpus, write a sample recording.",
                       no_args_is_help=True)

_DEFAULT_RATE = PAPER_SFREQ  # the paper's window: 440 ms as 512 samples


def _freq(value: Optional[str], name: str) -> Optional[float]:
    """A frequency option: a number, or ``none``/``0`` to switch the filter off."""
    if value is None or value.strip().lower() in ("none", "off", "0", ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a frequency in Hz or 'none', got {value!r}") from None


@data_app.command("inspect")
def inspect(
    file: Path = typer.Argument(..., help="An EEG file (EDF/BDF/GDF/FIF/BrainVision .vhdr/EEGLAB .set/CNT/.npy)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    sfreq: Optional[float] = typer.Option(None, "--sfreq", parser=SFREQ, help="Sampling rate of a .npy array (Hz)."),
) -> None:
    """Channels, sampling rate, duration, flat/bad channels and NaN/Inf counts of one recording."""
    info = inspect_recording(file, sfreq=sfreq)
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"file:        {info['path']} ({info['format']})")
    typer.echo(f"channels:    {info['n_channels']} ({', '.join(info['ch_names'][:16])}"
               f"{', ...' if info['n_channels'] > 16 else ''})")
    typer.echo(f"rate:        {info['sfreq']:g} Hz")
    typer.echo(f"duration:    {info['duration_s']:.3f} s ({info['n_samples']} samples)")
    typer.echo(f"flat:        {', '.join(info['flat_channels']) or 'none'}")
    typer.echo(f"bad:         {', '.join(info['bad_channels']) or 'none'}")
    typer.echo(f"NaN / Inf:   {info['n_nan']} / {info['n_inf']}")
    typer.echo(f"positions:   {'yes' if info['has_positions'] else 'no'}")


@data_app.command("build-corpus")
def build_corpus_cmd(
    inputs: Optional[List[Path]] = typer.Argument(None, help="EEG files and/or folders (searched recursively)."),
    output: Path = typer.Option(..., "--output", help="Corpus folder to create (written to a temporary name first)."),
    moabb: Optional[str] = typer.Option(None, "--moabb", help="MOABB dataset(s): CODE[,CODE] (class name or code)."),
    moabb_subjects: Optional[str] = typer.Option(None, "--moabb-subjects", help="Only these MOABB subjects: 1,2,5."),
    exclude: Optional[List[str]] = typer.Option(None, "--exclude",
                                                help="Subject, path, glob, or a text file of them (repeatable)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad recording instead of skipping it."),
    sfreq: Optional[float] = typer.Option(None, "--sfreq", parser=SFREQ, help="Sampling rate of .npy inputs (Hz)."),
    n_chans: int = typer.Option(128, "--n-chans", parser=integer(1, 4096), help="Channels of the model input."),
    n_times: int = typer.Option(512, "--n-times", parser=integer(1, 100_000), help="Samples per window."),
    resample: float = typer.Option(_DEFAULT_RATE, "--resample", parser=SFREQ,
                                   help="Common rate (Hz) every recording is resampled to (default: 512 / 0.44 s)."),
    stride: Optional[int] = typer.Option(None, "--stride", parser=integer(1, 100_000), help="Samples between window starts (default: n-times)."),
    l_freq: Optional[str] = typer.Option("5", "--l-freq", help="High-pass edge in Hz, or 'none'."),
    h_freq: Optional[str] = typer.Option("95", "--h-freq", help="Low-pass edge in Hz, or 'none'."),
    notch: Optional[str] = typer.Option(None, "--notch", help="Line frequency to notch out (50 or 60) and harmonics."),
    channel_mapping: str = typer.Option("repeat", "--channel-mapping", help="repeat (paper) | montage (positions)."),
    montage: str = typer.Option("standard_1005", "--montage", help="Standard montage for channel positions."),
    normalize: str = typer.Option("zscore", "--normalize", help="zscore (per window and channel) | none."),
    max_windows: Optional[int] = typer.Option(None, "--max-windows-per-recording", parser=POSITIVE,
                                              help="Cap windows per recording (random, seeded)."),
    repair: bool = typer.Option(False, "--repair", help="Interpolate channels holding NaN/Inf instead of skipping."),
    shard_size: int = typer.Option(1024, "--shard-size", parser=integer(1, 1_000_000), help="Windows per shard file."),
    seed: int = typer.Option(0, "--seed", parser=SEED, help="Seed of the window cap's random choice."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing corpus at --output."),
) -> None:
    """Turn EEG files, folders and MOABB datasets into a sharded, memory-mapped pretraining corpus."""
    spec = InputSpec(n_chans=n_chans, n_times=n_times, sfreq=resample, l_freq=_freq(l_freq, "--l-freq"),
                     h_freq=_freq(h_freq, "--h-freq"), notch=_freq(notch, "--notch"),
                     channel_mapping=channel_mapping, normalize=normalize, window_stride=stride, montage=montage)
    subjects = None
    if moabb_subjects:
        try:
            subjects = [int(s) for s in moabb_subjects.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--moabb-subjects must be numbers like 1,2,5, got {moabb_subjects!r}") from None
    out = build_corpus(list(inputs or []), output, spec=spec, moabb=moabb, exclude=exclude, strict=strict,
                       sfreq=sfreq, shard_size=shard_size, seed=seed, overwrite=overwrite,
                       max_windows_per_recording=max_windows, moabb_subjects=subjects, repair=repair)
    m = read_manifest(out)
    typer.echo(f"{out}: {m['n_windows']} windows of {m['n_chans']} x {m['n_times']} from {len(m['recordings'])} "
               f"recording(s); {len(m.get('skipped', []))} skipped, {len(m.get('excluded', []))} excluded")


@data_app.command("make-sample")
def make_sample(
    output: Path = typer.Argument(..., help="File to write: .fif, .edf, .vhdr (BrainVision) or .set (EEGLAB)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
) -> None:
    """Write a real EEG recording (spkit's 14-channel Emotiv EPOC, 16 s at 128 Hz) to try the commands on."""
    typer.echo(str(write_sample(output, overwrite=overwrite)))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
