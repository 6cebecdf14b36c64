"""The embedded default trained pipeline (what `dreamdiffusion app` uses without --model)."""

import json

import numpy as np
import pytest

from dreamdiffusion.app.engine import Engine
from dreamdiffusion.models import builtin


def test_shipped_default_pipeline_is_safetensors_and_json_only():
    path = builtin.default_pipeline_path()
    assert path is not None, "src/dreamdiffusion/assets/builtin/pipeline is missing: run scripts/make_default_pipeline.sh"
    suffixes = {p.suffix for p in path.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".safetensors"}, suffixes
    provenance = json.loads((path / "provenance.json").read_text())
    assert provenance["command"].startswith("dreamdiffusion demo")


@pytest.mark.slow
def test_app_engine_without_model_generates_from_the_default():
    engine = Engine.from_pretrained(None)
    rng = np.random.default_rng(0)
    window = rng.standard_normal((engine.n_chans, 512)).astype(np.float32)
    first = engine.generate(window, steps=3, guidance=1.0, seed=0)
    again = engine.generate(window, steps=3, guidance=1.0, seed=0)
    images = first if isinstance(first, list) else [first]
    again = again if isinstance(again, list) else [again]
    arr = np.asarray(images[0])
    assert arr.ndim == 3 and arr.shape[2] == 3 and arr.shape[0] == builtin.RESOLUTION
    assert np.array_equal(arr, np.asarray(again[0]))  # same seed, same image
