"""CLI: ``dreamdiffusion app``, the Gradio web app (a thin wrapper over dreamdiffusion.app.web)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Optional

import typer

from dreamdiffusion.app.engine import Engine
from dreamdiffusion.app.web import benchmark_samples, require_gradio, serve
from dreamdiffusion.commands._options import Conditioning, IPAdapter, IPBase, integer, number
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.data.preflight import APP_MAX_EEG_MB

logger = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    @app.command("app")
    def app_command(
        model: Optional[Path] = typer.Option(None, "--model", help="Pipeline folder or aligned encoder (default: "
                                             "the embedded trained pipeline, if this installation ships one)."),
        conditioning: Conditioning = "auto",
        base: IPBase = None,
        ip_adapter: IPAdapter = None,
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to serve on (loopback by default; "
                                 "0.0.0.0 exposes the app to the network)."),
        port: int = typer.Option(7860, "--port", parser=integer(1, 65535), help="TCP port."),
        max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", parser=number(1e-3, 1e6),
                                            help="Largest EEG file accepted."),
        max_eeg_mb: float = typer.Option(APP_MAX_EEG_MB, "--max-eeg-mb", parser=number(1.0, 1e6),
                                         help="Most memory one uploaded recording's samples may take (float64, "
                                              "checked from its header before reading; compressed files that "
                                              "expand past it are refused)."),
        concurrency: int = typer.Option(1, "--concurrency", parser=integer(1, 1024), help="Generations run at once; others wait in "
                                        "the queue."),
        samples: int = typer.Option(8, "--samples", parser=integer(0, 1000), help="Benchmark samples offered in the page (0: none)."),
        workdir: Optional[Path] = typer.Option(None, "--workdir", help="Where generated images, manifests "
                                               "and samples are written (default: a temporary folder)."),
        live_dir: Optional[Path] = typer.Option(None, "--live-dir", help="Also show, live, the images a "
                                                "`dreamdiffusion stream --output DIR` run writes there."),
    ) -> None:
        """Serve the web app: upload EEG (or pick a benchmark sample), choose a window, generate images."""
        if not (0 < port < 65536):
            raise ConfigError(f"--port must be between 1 and 65535, got {port}")
        if max_upload_mb <= 0 or concurrency < 1:
            raise ConfigError("--max-upload-mb must be positive and --concurrency at least 1")
        require_gradio()
        engine = Engine.from_pretrained(model, conditioning, base, ip_adapter)
        work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="dreamdiffusion-app-"))
        work.mkdir(parents=True, exist_ok=True)
        # A demo run folder has its benchmark beside the pipeline: offer that benchmark's test trials.
        bench = Path(model) / "benchmark" if model is not None else None
        bench = bench if bench is not None and (bench / "benchmark.json").is_file() else None
        offered = benchmark_samples(work / "samples", n=samples, benchmark=bench) if samples > 0 else []
        if host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning("serving on %s: anyone who can reach this address can use the app", host)
        logger.info("DreamDiffusion app on http://%s:%d (model %s, %s conditioning, outputs in %s)", host, port,
                    engine.name, engine.conditioning["route"], work)
        start = engine.settings()
        logger.info("the page starts at %d steps (%s) and guidance %g (%s)", start["steps"],
                    start["settings_source"]["steps"], start["guidance"], start["settings_source"]["guidance"])
        serve(engine, host=host, port=port, max_upload_mb=max_upload_mb, max_eeg_mb=max_eeg_mb,
              concurrency=concurrency,
              samples=offered, workdir=work / "outputs", live_dir=live_dir, block=True)
