"""The command line itself: one-line errors, and --debug as one global option accepted anywhere."""

import pytest

from dreamdiffusion.cli import main
from dreamdiffusion.core.errors import DreamDiffusionError


def test_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["data", "inspect", str(tmp_path / "missing.edf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "missing.edf" in err[0]


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
