"""The ``dreamdiffusion`` command line: a Typer app whose commands are thin wrappers.

Each group of commands lives in ``dreamdiffusion.commands.<name>`` and registers itself
through ``register(app)``, imported only when one of its commands runs or shows its help
(``dreamdiffusion --help`` lists them from ``commands.COMMANDS`` and loads none). Errors of the project's own family become one line on stderr and
exit status 2; ``--debug`` (a global option; accepted anywhere on the command line) shows the
traceback instead.
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys

import click
import typer
import typer.core
import typer.main

from dreamdiffusion.commands import COMMANDS, command_module
from dreamdiffusion.core.errors import DreamDiffusionError
from dreamdiffusion.core.quiet import one_line, quiet_libraries


class _LazyGroup(typer.core.TyperGroup):
    """The root group. Until a command is resolved it is a stub with its one-line help (enough for the listing);
    resolving it imports its module and puts the real command in the stub's place."""

    def __init__(self, **attrs):
        super().__init__(**attrs)
        for name, (_, short_help) in COMMANDS.items():
            self.commands.setdefault(name, click.Command(name, help=short_help))

    def resolve_command(self, ctx, args):
        if args and args[0] in COMMANDS and not getattr(self.commands[args[0]], "_loaded", False):
            own = typer.Typer()
            importlib.import_module(command_module(args[0])).register(own)
            for name, command in typer.main.get_group(own).commands.items():
                command._loaded = True
                self.commands[name] = command
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_LazyGroup,
    name="dreamdiffusion",
    help="DreamDiffusion: generate images from brain EEG (MSM pretraining, Stable Diffusion, CLIP alignment).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


_state = {"debug": False}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
) -> None:
    """DreamDiffusion command line."""
    _state["debug"] = debug


# Typer 0.2x runs on its own copy of click (typer._click); catch both so a bad flag is one line either way.
_CLICKS = [click.exceptions]
try:
    from typer._click import exceptions as _typer_click
except ImportError:  # older typer: click itself
    pass
else:
    _CLICKS.append(_typer_click)


def _all(name: str, *extra) -> tuple:
    return tuple({getattr(m, name) for m in _CLICKS if hasattr(m, name)} | set(extra))


_EXIT = _all("Exit", typer.Exit)
_ABORT = _all("Abort", typer.Abort)
_HELP = _all("NoArgsIsHelpError")
_CLICK_ERROR = _all("ClickException")


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
        stream=sys.stderr,
    )
    quiet_libraries(debug)


def _global_options_first(argv: list[str]) -> list[str]:
    """``--debug`` is the app's option; users also write it after the command (``finetune ... --debug``)."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--debug" not in argv[:end]:
        return argv
    return ["--debug"] + [a for i, a in enumerate(argv) if not (a == "--debug" and i < end)]


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}  # no space left; over quota


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status (the console script exits with it)."""
    argv = _global_options_first(list(sys.argv[1:] if argv is None else argv))
    _state["debug"] = False
    _configure_logging(argv[:1] == ["--debug"])  # before parsing: the commands log while they run
    try:
        app(args=argv, prog_name="dreamdiffusion", standalone_mode=False)
    except _EXIT as exc:
        return exc.exit_code
    except _ABORT:
        sys.stderr.write("aborted\n")
        return 130
    except _HELP as exc:
        exc.show()
        return exc.exit_code
    except _CLICK_ERROR as exc:  # a bad flag or value: one line naming it, like every other error
        # (typer validates through pydantic, which prefixes the parser's message with "Value error, ")
        sys.stderr.write(f"error: {one_line(exc.format_message().replace('Value error, ', ''), 500)}\n")
        return exc.exit_code
    except DreamDiffusionError as exc:
        if _state["debug"]:
            raise
        sys.stderr.write(f"error: {one_line(exc, 1000)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except OSError as exc:
        if _state["debug"]:
            raise
        if exc.errno not in _DISK_FULL:
            return _internal_error(exc)
        # a full disk is the machine's state, not a bug: say which file, and that nothing half-written was kept
        where = f"{exc.filename}: " if exc.filename else ""
        sys.stderr.write(f"error: {where}no space left on the disk ({exc.strerror or exc}); outputs are written "
                         "atomically, so no finished file was replaced by a partial one: free some space and run again\n")
        return 2
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        if _state["debug"]:
            raise
        return _internal_error(exc)
    return 0


def _internal_error(exc: BaseException) -> int:
    sys.stderr.write(f"error: internal error: {type(exc).__name__}: {one_line(exc)} "
                     "(run again with --debug for the traceback)\n")
    return 1


if __name__ == "__main__":  # python -m dreamdiffusion.cli
    sys.exit(main())
