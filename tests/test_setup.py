"""scripts/setup.sh byte-compiles the venv once but skips what the project never loads (``compileall -x``). With
``PYTHONDONTWRITEBYTECODE`` set, a skipped module that is imported after all would be compiled again by every
process, so: no module the project imports may match the skip pattern, and the pattern must still skip what it is
for (a guard that skipped nothing would pass the first check too)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"


def skip_pattern() -> re.Pattern:
    """The ``UNUSED`` pattern exactly as the set-up's shell builds it (its assignment lines run by bash)."""
    lines = [ln.strip() for ln in SETUP.read_text().splitlines() if ln.strip().startswith("UNUSED=")]
    assert lines, f"{SETUP}: no UNUSED= lines (the compile pass's skip pattern)"
    script = "\n".join(lines) + '\nprintf %s "$UNUSED"'
    return re.compile(subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout)


def test_the_skip_pattern_skips_test_suites_and_unused_model_families():
    rx = skip_pattern()
    site = "/x/.venv/lib/python3.11/site-packages/"
    for unused in ("pandas/tests/frame/test_api.py", "transformers/models/bert/modeling_bert.py",
                   "diffusers/pipelines/flux/pipeline_flux.py", "tests/__init__.py"):
        assert rx.search(site + unused), unused
    for used in ("transformers/models/clip/modeling_clip.py", "transformers/models/__init__.py",
                 "diffusers/pipelines/pipeline_utils.py", "torch/testing/_comparison.py", "torch/nn/modules/linear.py"):
        assert not rx.search(site + used), used
    # a checkout under a folder named tests/ is still compiled: the pattern starts at site-packages/
    assert not rx.search("/home/me/tests/dreamdiffusion/.venv/lib/python3.11/site-packages/torch/nn/modules/linear.py")


def test_no_module_the_project_imports_is_skipped():
    import dreamdiffusion

    for info in pkgutil.walk_packages(dreamdiffusion.__path__, "dreamdiffusion."):
        if not info.name.endswith("__main__"):  # running it would start the command line
            importlib.import_module(info.name)
    # what transformers and diffusers import lazily when the project first touches these names
    import diffusers
    import transformers

    for name in ("CLIPModel", "CLIPVisionModelWithProjection", "CLIPTextModel", "CLIPTokenizer", "CLIPImageProcessor"):
        getattr(transformers, name)
    for name in ("UNet2DConditionModel", "AutoencoderKL", "DPMSolverMultistepScheduler", "DDPMScheduler"):
        getattr(diffusers, name)
    files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
    installed = [f for f in files if "site-packages/" in f.replace("\\", "/")]
    if len(installed) < 100:
        pytest.skip("the packages are not installed under site-packages/ here (the set-up's venv layout)")
    rx = skip_pattern()
    skipped = sorted(f for f in installed if rx.search(f.replace("\\", "/")))
    assert not skipped, f"imported but skipped by scripts/setup.sh's compile pass: {skipped[:10]}"


def test_an_unknown_part_is_one_line_and_touches_nothing(tmp_path):
    # the part is checked before the venv is made: a typo must not start a multi-minute install
    proc = subprocess.run(["bash", str(SETUP), "tests"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "scripts/setup.sh: unknown part 'tests' (use 'demo', or no argument for everything)"
    assert not (SETUP.parents[1] / ".venv" / ".setup-tests-done").exists()


def test_the_demos_part_is_a_subset_and_skipped_where_the_full_set_up_is_done(tmp_path):
    parts = dict(re.findall(r'^\s*(\w+)\) EXTRAS="([^"]*)"', SETUP.read_text(), flags=re.M))
    assert set(parts) == {"all", "demo"}
    assert set(parts["demo"].split(",")) < set(parts["all"].split(","))
    # a copy of the script in a bare folder, with no Python to build a venv from: any install attempt fails
    (tmp_path / "scripts").mkdir()
    shutil.copy(SETUP, tmp_path / "scripts" / "setup.sh")
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".venv").mkdir()
    env = {**os.environ, "PYTHON": "false"}

    def setup(*part):
        return subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh"), *part], capture_output=True, env=env)

    assert setup("demo").returncode != 0  # nothing set up yet: it tries to build the venv
    os.utime(tmp_path / "pyproject.toml", (1, 1))
    (tmp_path / ".venv" / ".setup-done").touch()  # the full set-up, newer than pyproject.toml
    assert setup("demo").returncode == 0
    (tmp_path / "pyproject.toml").touch()  # a changed dependency list: the full set-up is stale again
    assert setup("demo").returncode != 0
