"""CLI: ``dreamdiffusion stream``, images from a live LSL EEG stream (wraps dreamdiffusion.app.stream)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dreamdiffusion.app.engine import Engine
from dreamdiffusion.app.stream import require_lsl, run_stream
from dreamdiffusion.commands._options import (
    GUIDANCE,
    POSITIVE,
    SEED,
    STEPS,
    Conditioning,
    IPAdapter,
    IPBase,
    LowLevelStrength,
    number,
)


def register(app: typer.Typer) -> None:
    @app.command("stream")
    def stream_command(
        lsl_stream: str = typer.Option(..., "--lsl-stream", help="Name of the LSL EEG stream to read."),
        output: Path = typer.Option(..., "--output", help="Folder for the images and manifest.jsonl."),
        model: Optional[Path] = typer.Option(None, "--model", help="Pipeline folder or aligned encoder (default: "
                                             "the embedded trained pipeline, if this installation ships one)."),
        conditioning: Conditioning = "auto",
        base: IPBase = None,
        ip_adapter: IPAdapter = None,
        every: Optional[float] = typer.Option(None, "--every", parser=number(1e-3, 1e6), help="Generate from the latest window every "
                                              "SECONDS."),
        on_marker: Optional[str] = typer.Option(None, "--on-marker", help="Name of an LSL marker stream: "
                                                "generate from the window that starts at each marker."),
        max_images: Optional[int] = typer.Option(None, "--max-images", parser=POSITIVE, help="Stop after N images."),
        duration: Optional[float] = typer.Option(None, "--duration", parser=number(1e-3, 1e9), help="Stop after S seconds."),
        steps: Optional[int] = typer.Option(None, "--steps", parser=STEPS, help="Denoising steps per image (default: the "
                                            "model's generation.json, else 25)."),
        guidance: Optional[float] = typer.Option(None, "--guidance", parser=GUIDANCE, help="Classifier-free guidance scale (1: "
                                                 "none; default: the model's recommended scale, else 1)."),
        low_level_strength: LowLevelStrength = None,
        seed: int = typer.Option(0, "--seed", parser=SEED, help="Seed of the first image (then +1 per image)."),
        mapping: Optional[str] = typer.Option(None, "--mapping", help="Channel mapping: montage (by electrode "
                                              "position) or repeat; default: the model's."),
        montage: Optional[str] = typer.Option(None, "--montage", help="Electrode positions for streams whose "
                                              "channels are not 10-05 names (standard montage or file)."),
        timeout: float = typer.Option(10.0, "--timeout", parser=number(0.0, 1e6), help="Seconds to wait for the LSL streams."),
    ) -> None:
        """Read an LSL EEG stream and write an image on every marker or interval."""
        require_lsl()  # before the model loads: the demo's part of the set-up leaves mne-lsl out
        engine = Engine.from_pretrained(model, conditioning, base, ip_adapter)
        records = run_stream(engine, stream_name=lsl_stream, output=output, every=every, on_marker=on_marker,
                             max_images=max_images, duration=duration, steps=steps, guidance=guidance, seed=seed,
                             mapping=mapping, montage=montage, timeout=timeout, low_level_strength=low_level_strength)
        typer.echo(f"{len(records)} image(s) written to {output}")
