"""The ``dreamdiffusion`` command line: a Typer app whose commands are thin wrappers.

Each group of commands lives in ``dreamdiffusion.commands.<name>`` and registers itself
through ``register(app)``. Errors of the project's own family become one line on stderr and
exit status 2; ``--debug`` anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys

import click
import typer

from dreamdiffusion.core.errors import DreamDiffusionError

app = typer.Typer(
    name="dreamdiffusion",
    help="DreamDiffusion: generate images from brain EEG (MSM pretraining, Stable Diffusion, CLIP alignment).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    """DreamDiffusion command line."""


def _register_commands() -> None:
    from dreamdiffusion.commands import ALL_COMMAND_MODULES

    for module in ALL_COMMAND_MODULES:
        module.register(app)


_register_commands()


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
        stream=sys.stderr,
    )
    for noisy in ("mne", "httpx", "urllib3", "matplotlib", "PIL", "accelerate", "diffusers", "transformers"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status (and exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    _configure_logging(debug)
    try:
        app(args=argv, prog_name="dreamdiffusion", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return _exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.stderr.write("aborted\n")
        return _exit(130)
    except click.ClickException as exc:
        exc.show()
        return _exit(exc.exit_code)
    except DreamDiffusionError as exc:
        if debug:
            raise
        sys.stderr.write(f"error: {exc}\n")
        return _exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return _exit(130)
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        if debug:
            raise
        sys.stderr.write(f"error: internal error: {type(exc).__name__}: {exc} (run again with --debug for the traceback)\n")
        return _exit(1)
    return _exit(0)


def _exit(code: int) -> int:
    # The console script wraps main() in sys.exit(), so returning is enough.
    return code


if __name__ == "__main__":  # python -m dreamdiffusion.cli
    sys.exit(main())
