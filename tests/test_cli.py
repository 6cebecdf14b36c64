"""The command line itself: one-line errors, and --debug as one global option accepted anywhere."""

import errno

import pytest

from dreamdiffusion.cli import main
from dreamdiffusion.core.errors import DreamDiffusionError


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "missing.edf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "missing.edf" in err[0]


def test_demo_refuses_more_clip_guidance_moves_than_generation_json_holds(tmp_path, capsys):
    """Refused before any work, not after Stage B when generation.json is written (it holds 1..100)."""
    assert main(["demo", "--output", str(tmp_path / "demo"), "--clip-guidance-steps", "101"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--clip-guidance-steps" in err[0] and "between 1 and 100" in err[0], err
    assert not (tmp_path / "demo").exists()


def _raise(exc):
    def fail(*args, **kwargs):
        raise exc
    return fail


def test_a_full_disk_is_one_line_naming_the_file_and_status_2(tmp_path, monkeypatch, capsys):
    """A write that runs out of disk is the machine's state, not a bug: no "internal error", the file named."""
    from dreamdiffusion.commands import data
    monkeypatch.setattr(data, "inspect_recording", _raise(OSError(errno.ENOSPC, "No space left on device",
                                                                  str(tmp_path / "eeg.npy"))))
    assert main(["data", "inspect", str(tmp_path / "x.edf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error" not in err[0], err
    assert "eeg.npy" in err[0] and "no space left" in err[0]
    # any other OSError is still reported as a bug, and --debug still shows the exception
    monkeypatch.setattr(data, "inspect_recording", _raise(OSError(errno.EIO, "I/O error")))
    assert main(["data", "inspect", str(tmp_path / "x.edf")]) == 1
    assert "internal error: OSError" in capsys.readouterr().err
    with pytest.raises(OSError):
        main(["--debug", "data", "inspect", str(tmp_path / "x.edf")])


@pytest.mark.parametrize("where", ["first", "last"])
def test_debug_shows_the_exception_wherever_it_is_written(tmp_path, where):
    args = ["data", "inspect", str(tmp_path / "missing.edf")]
    with pytest.raises(DreamDiffusionError):
        main(["--debug", *args] if where == "first" else [*args, "--debug"])


def test_debug_is_a_global_option_only(capsys):
    assert main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out
    assert main(["generate", "--help"]) == 0
    assert "--debug" not in capsys.readouterr().out  # not declared again on each command


def test_public_api_from_the_top_level():
    from dreamdiffusion import DreamDiffusionPipeline, EEGConditioner, EEGEncoder
    from dreamdiffusion.pipeline import DreamDiffusionPipeline as Pipe

    assert DreamDiffusionPipeline is Pipe and EEGEncoder.__name__ == "EEGEncoder"
    assert EEGConditioner.__name__ == "EEGConditioner"


def test_help_lists_every_command_without_importing_them():
    """``dreamdiffusion --help`` loads no command module (they pull in torch and diffusers); each listed line is the
    command's own."""
    import subprocess
    import sys

    code = ("import sys; from dreamdiffusion.cli import main; assert main(['--help']) == 0; "
            "print(sorted(m for m in sys.modules if m.startswith(('dreamdiffusion.commands.', 'diffusers', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"

    import typer
    import typer.main

    from dreamdiffusion.commands import COMMANDS, command_module

    for name, (_, short_help) in COMMANDS.items():
        own = typer.Typer()
        __import__(command_module(name), fromlist=["register"]).register(own)
        command = typer.main.get_group(own).commands[name]
        assert command.get_short_help_str(1000) == short_help, name
