"""scripts/setup.sh byte-compiles the venv once but skips what the project never loads (``compileall -x``). With
``PYTHONDONTWRITEBYTECODE`` set, a skipped module that is imported after all would be compiled again by every
process, so: no module the project imports may match the skip pattern, and the pattern must still skip what it is
for (a guard that skipped nothing would pass the first check too)."""

from __future__ import annotations

import importlib
import pkgutil
import re
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
