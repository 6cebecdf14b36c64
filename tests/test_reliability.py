"""Reliability and security promises (issue 15): each attack is made here, in the test, and must end in one
line naming the file or flag, exit status 2, no traceback, no code run, quickly.

Covers: the output-folder policy (temporary sibling, rename, --overwrite, stale cleanup, a real SIGKILL of
`generate`), numbers at the CLI edge, JSON without NaN, the user's umask, bounds of every config of a model
folder, custom code and pickled weights in model folders, library warnings as one line.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dreamdiffusion.core import files
from dreamdiffusion.core.config import check_model_folder, read_json_config
from dreamdiffusion.core.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "dreamdiffusion" / "assets" / "builtin"


def _cli(argv, capsys):
    from dreamdiffusion.cli import main

    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def _one_line(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in "\n".join(err), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _copy_model(src: Path, dst: Path) -> Path:
    """A copy of a model folder whose JSON files are real copies and whose weights are symlinks."""
    for p in src.rglob("*"):
        target = dst / p.relative_to(src)
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif p.suffix == ".json":
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(p, target)
    return dst


def _edit_json(path: Path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# ------------------------------------------------------------------------------------ the output-folder policy


def test_staged_folder_replaces_whole_or_not_at_all(tmp_path):
    out = tmp_path / "out"
    with files.staged_folder(out) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.partial-") and not out.exists()
        (tmp / "a.txt").write_text("first")
    assert (out / "a.txt").read_text() == "first"
    with pytest.raises(ConfigError, match="not empty.*--overwrite"):
        with files.staged_folder(out):
            pass
    with pytest.raises(RuntimeError):
        with files.staged_folder(out, overwrite=True) as tmp:
            (tmp / "b.txt").write_text("half")
            raise RuntimeError("killed half way")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]  # the old output, untouched
    with files.staged_folder(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]  # the new output only: never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary sibling left


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_folders_of_killed_runs_are_removed(tmp_path):
    out = tmp_path / "out"
    dead, alive = _dead_pid(), os.getpid()
    (tmp_path / f".out.partial-{dead}-abc").mkdir()
    (tmp_path / f".out.partial-{dead}-abc" / "0000_0.png").write_bytes(b"x")
    (tmp_path / f".out.partial-{alive}-live").mkdir()  # a run in progress: never touched
    legacy = tmp_path / "out.tmp-old"  # build-corpus of earlier versions (no PID): removed once old
    legacy.mkdir()
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    # A run killed between moving the old output aside and renaming its own: the old one comes back.
    (tmp_path / f".out.old-{dead}-xyz" / "previous").mkdir(parents=True)
    (tmp_path / f".out.old-{dead}-xyz" / "previous" / "manifest.json").write_text("{}")
    removed = files.remove_stale_staging(out)
    assert len(removed) == 3
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f".out.partial-{alive}-live", "out"]
    assert (out / "manifest.json").read_text() == "{}"


def test_check_output_folder_refuses_before_anything_runs(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="existing file"):
        files.check_output_folder(tmp_path / "file")
    with pytest.raises(ConfigError, match="cannot create"):
        files.check_output_folder(tmp_path / "file" / "sub" / "out")
    (tmp_path / "empty").mkdir()
    assert files.check_output_folder(tmp_path / "empty") == tmp_path / "empty"


def test_atomic_writes_use_the_umask_and_json_has_no_nan(tmp_path):
    old = os.umask(0o027)
    try:
        import importlib

        importlib.reload(files)  # the umask is read once, at import
        p = files.atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
        with files.staged_folder(tmp_path / "run") as tmp:
            (tmp / "f").write_text("x")
        assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o750
    finally:
        os.umask(old)
        importlib.reload(files)
    p = files.atomic_write_text(tmp_path / "b.txt", "x")
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~old
    for bad in (math.nan, math.inf, [1.0, -math.inf], {"g": float("nan")}):
        with pytest.raises(ValueError, match="NaN/Infinity"):
            files.atomic_write_json(tmp_path / "m.json", {"x": bad})
    assert not (tmp_path / "m.json").exists()


def test_generate_killed_with_sigkill_leaves_the_old_folder_or_nothing(tmp_path):
    """A real `dreamdiffusion generate` process, killed with SIGKILL while it writes images: the output
    folder is the previous complete run, untouched; the next run removes the dead run's temporary folder."""
    from dreamdiffusion.data.io import write_sample

    eeg = write_sample(tmp_path / "rec.edf")
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"items": ["old"]}')
    (out / "grid.png").write_bytes(b"old grid")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    onsets = [f"--onset={0.1 * k:.1f}" for k in range(60)]
    cmd = [sys.executable, "-m", "dreamdiffusion.cli", "generate", "--eeg-file", str(eeg), "--output", str(out),
           "--overwrite", "--steps", "1", "--num-images", "1", "--batch-size", "1", *onsets]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    partial = []
    while time.time() < deadline and proc.poll() is None:
        partial = list(tmp_path.glob(".out.partial-*/images/*.png"))
        if partial:
            break
        time.sleep(0.05)
    assert partial, f"generate never started writing: {proc.stderr.read().decode()[-2000:] if proc.poll() else ''}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old complete folder, no new PNG
    stale = list(tmp_path.glob(".out.partial-*"))
    assert len(stale) == 1
    removed = files.remove_stale_staging(out)  # what the next run does first
    assert removed == stale and not stale[0].exists()


# ------------------------------------------------------------------------------------ numbers at the CLI edge


@pytest.mark.parametrize("flag, value, says", [
    ("--guidance", "inf", "between 1 and 100"), ("--guidance", "nan", "between 1 and 100"),
    ("--guidance", "-5", "between 1 and 100"), ("--guidance", "0", "between 1 and 100"),
    ("--batch-size", "0", "between 1 and"), ("--batch-size", "-1", "between 1 and"),
    ("--onset", "nan", "between 0 and"), ("--onset", "-inf", "between 0 and"), ("--steps", "1000000000", "10000"),
    ("--num-images", "0", "between 1 and"), ("--seed", str(2**70), "between 0 and"), ("--sfreq", "nan", "number"),
    ("--steps", "abc", "must be an integer"),
])
def test_generate_numbers_are_checked_at_the_edge(tmp_path, capsys, flag, value, says):
    t0 = time.time()
    code, err = _cli(["generate", "--eeg-file", tmp_path / "x.edf", "--output", tmp_path / "o", flag, value], capsys)
    _one_line(code, err, flag, says)
    assert time.time() - t0 < 5 and not (tmp_path / "o").exists()


def test_generate_checks_model_and_output_before_loading(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = _cli(["generate", "--eeg-file", tmp_path / "x.edf", "--output", tmp_path / "file"], capsys)
    _one_line(code, err, str(tmp_path / "file"), "existing file")
    code, err = _cli(["generate", "--eeg-file", tmp_path / "x.edf", "--output", tmp_path / "file" / "o"], capsys)
    _one_line(code, err, "cannot create")
    code, err = _cli(["generate", "--model", "no/such/dir", "--eeg-file", tmp_path / "x.edf", "--output",
                      tmp_path / "o"], capsys)
    _one_line(code, err, "no/such/dir", "pipeline folder not found")
    code, err = _cli(["generate", "--model", tmp_path / "file", "--eeg-file", tmp_path / "x.edf", "--output",
                      tmp_path / "o"], capsys)
    _one_line(code, err, "not a file")


# ------------------------------------------------------------------------------------ configs of model folders

_PIPELINE_ATTACKS = [
    ("eeg_conditioner/config.json", {"n_chans": 10**9}, "n_chans"),
    ("eeg_conditioner/config.json", {"embed_dim": 10**6}, "embed_dim"),
    ("eeg_conditioner/config.json", {"depth": 200, "embed_dim": 8192}, "parameters"),
    ("eeg_conditioner/config.json", {"n_times": "512"}, "n_times"),
    ("unet/config.json", {"block_out_channels": [32, 10**6]}, "block_out_channels[1]"),
    ("unet/config.json", {"block_out_channels": 64}, "block_out_channels must be a list"),
    ("vae/config.json", {"latent_channels": 10**7}, "latent_channels"),
    ("scheduler/scheduler_config.json", {"num_train_timesteps": 10**10}, "num_train_timesteps"),
    ("scheduler/scheduler_config.json", {"beta_end": float("nan")}, "beta_end"),
    ("preprocessing.json", {"n_times": 10**7}, "n_times"),
    ("generation.json", {"num_inference_steps": 10**9}, "num_inference_steps"),
    ("generation.json", {"guidance_scale": float("inf")}, "guidance_scale"),
    ("model_index.json", {"unet": ["os", "system"]}, "os.system"),
    ("model_index.json", {"unet": ["diffusers", "DiffusionPipeline"]}, "not a known model"),
    ("unet/config.json", {"auto_map": {"AutoModel": "evil.Model"}}, "auto_map"),
    ("model_index.json", {"custom_pipeline": "evil"}, "custom_pipeline"),
]


@pytest.mark.parametrize("name, change, says", _PIPELINE_ATTACKS)
def test_pipeline_configs_are_bounded_before_anything_is_built(tmp_path, capsys, name, change, says):
    from dreamdiffusion.pipeline import DreamDiffusionPipeline

    folder = _copy_model(SHIPPED / "pipeline", tmp_path / "pipe")
    _edit_json(folder / name, **change)
    t0 = time.time()
    with pytest.raises(ConfigError) as e:
        DreamDiffusionPipeline.from_pretrained(folder)
    assert e.value.path == str(folder / name) and says in e.value.message, str(e.value)
    assert "\n" not in str(e.value) and time.time() - t0 < 5


def test_preprocessing_json_must_be_an_object(tmp_path):
    folder = _copy_model(SHIPPED / "pipeline", tmp_path / "pipe")
    (folder / "preprocessing.json").write_text("[128, 512]")
    with pytest.raises(ConfigError, match="must hold a JSON object, got a list") as e:
        check_model_folder(folder)
    assert e.value.path == str(folder / "preprocessing.json")


def test_every_shipped_config_passes_the_bounds():
    for sub in ("pipeline", "base", "clip", "classifier"):
        check_model_folder(SHIPPED / sub)
    for p in SHIPPED.rglob("*.json"):
        read_json_config(p)


def test_generate_cli_on_a_bounded_config_is_one_line(tmp_path, capsys):
    folder = _copy_model(SHIPPED / "pipeline", tmp_path / "pipe")
    _edit_json(folder / "eeg_conditioner" / "config.json", n_chans=10**9)
    from dreamdiffusion.data.io import write_sample

    write_sample(tmp_path / "x.edf")
    code, err = _cli(["generate", "--model", folder, "--eeg-file", tmp_path / "x.edf", "--output", tmp_path / "o"],
                     capsys)
    _one_line(code, err, str(folder / "eeg_conditioner" / "config.json"), "n_chans")


def _clip_with_custom_code(folder: Path, marker: Path) -> Path:
    _copy_model(SHIPPED / "clip", folder)
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n"
                                    "from transformers import CLIPVisionModelWithProjection as Model\n")
    _edit_json(folder / "config.json", auto_map={"AutoModel": "evil.Model"})
    return folder


def test_clip_folder_with_custom_code_is_refused_without_a_question(tmp_path, capsys):
    """transformers would ask `Do you wish to run the custom code? [y/N]`: the command must neither ask nor
    run the code."""
    marker = tmp_path / "marker.txt"
    clip = _clip_with_custom_code(tmp_path / "clip", marker)
    from dreamdiffusion.models.hub import load_clip

    with pytest.raises(ConfigError, match="auto_map") as e:
        load_clip(str(clip))
    assert e.value.path == str(clip / "config.json") and not marker.exists()
    assert "\n" not in str(e.value)


def test_custom_code_is_refused_before_any_question(tmp_path, monkeypatch):
    """The refusal comes before transformers could prompt: input() is never called, nothing runs."""
    import builtins

    marker = tmp_path / "marker.txt"
    clip = _clip_with_custom_code(tmp_path / "clip", marker)
    monkeypatch.setattr(builtins, "input", lambda *a: pytest.fail("a command asked a question"))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    from dreamdiffusion.evaluation.classifier import ImageClassifier

    with pytest.raises(ConfigError, match="auto_map"):
        ImageClassifier.load(str(clip))
    assert not marker.exists() and not (tmp_path / "modules").exists()


def test_pickled_weights_are_refused_in_one_line(tmp_path):
    import torch

    marker = tmp_path / "marker.txt"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    clip = tmp_path / "clip"
    clip.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copyfile(SHIPPED / "clip" / name, clip / name)
    torch.save({"x": RunsCode()}, clip / "pytorch_model.bin")
    from dreamdiffusion.models.hub import load_clip

    with pytest.raises(ConfigError) as e:
        load_clip(str(clip))
    assert e.value.path == str(clip / "pytorch_model.bin") and "pickle" in e.value.message
    assert "\n" not in str(e.value) and "weights_only" not in str(e.value) and not marker.exists()


def test_library_warnings_reach_the_user_as_one_line(capsys):
    import warnings

    from dreamdiffusion.core import quiet

    saved = (warnings.showwarning, warnings.filters[:])
    try:
        quiet.quiet_libraries(debug=False)
        warnings.warn("`torch_dtype` is deprecated and will be removed", FutureWarning)
        warnings.warn("first line of advice\nsecond line\nthird line", UserWarning)
        warnings.warn("first line of advice\nsecond line\nthird line", UserWarning)
    finally:
        warnings.showwarning, warnings.filters[:] = saved[0], saved[1]
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: first line of advice"]


def test_pipeline_load_warns_nothing():
    """Loading the shipped pipeline as `generate` does raises no warning (diffusers' torch_dtype FutureWarning
    was printed on every load)."""
    import warnings

    from dreamdiffusion.generation import load_pipeline

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_pipeline(SHIPPED / "pipeline", dtype="float32", device="cpu")
    assert not [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))], \
        [str(w.message) for w in caught]


def test_every_command_that_writes_a_folder_refuses_a_non_empty_one(tmp_path, capsys):
    """generate, evaluate, demo and build-corpus: one line naming the folder and --overwrite, before any work."""
    from dreamdiffusion.data.io import write_sample

    rec = write_sample(tmp_path / "in" / "rec.edf")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    for argv in (["generate", "--eeg-file", rec, "--output", out],
                 ["evaluate", "--model", tmp_path / "none", "--output", out],
                 ["demo", "--output", out, "--fast"],
                 ["data", "build-corpus", rec.parent, "--output", out]):
        code, err = _cli(argv, capsys)
        _one_line(code, err, str(out), "--overwrite")
        assert (out / "mine.txt").read_text() == "keep me", argv[0]
    code, err = _cli(["evaluate", "--generated", out, "--output", out, "--overwrite"], capsys)
    _one_line(code, err, "--generated")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no temporary sibling left behind


def test_build_corpus_output_that_is_a_file_is_one_line(tmp_path, capsys):
    from dreamdiffusion.data.io import write_sample

    rec = write_sample(tmp_path / "in" / "rec.edf")
    (tmp_path / "file").write_text("x")
    for extra in ([], ["--overwrite"]):
        code, err = _cli(["data", "build-corpus", rec.parent, "--output", tmp_path / "file", *extra], capsys)
        _one_line(code, err, str(tmp_path / "file"), "existing file")
    assert (tmp_path / "file").read_text() == "x"
