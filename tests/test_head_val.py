"""benchmarks/head_val.py: the warm-up's CLIP head scored on val beside the ridge map."""

from __future__ import annotations

import json

import pytest


def test_set_parses_fields_by_type_and_refuses_the_rest(benchmark_script):
    from dreamdiffusion.experiments.settings import DemoSettings

    hv = benchmark_script("head_val")
    s = hv.parse_sets(DemoSettings(), ["clip_pool_tokens=32", "align=contrastive", "freeze_clip_head=false",
                                       "guidance=none", "clip_weight=0.5", "clip_warmup_learning_rate=0.001",
                                       "low_level_strengths=1,0.5"])
    assert (s.clip_pool_tokens, s.align, s.freeze_clip_head, s.guidance, s.clip_weight) == (
        32, "contrastive", False, None, 0.5)
    # a field whose default is None takes its annotation's type, not a string
    assert s.clip_warmup_learning_rate == 0.001 and isinstance(s.clip_warmup_learning_rate, float)
    assert s.low_level_strengths == (1.0, 0.5)
    for bad, message in (("no_such_field=1", "DemoSettings field"), ("clip_pool_tokens", "FIELD=VALUE"),
                         ("clip_pool_tokens=many", "not a valid int"), ("clip_warmup_learning_rate=fast", "not a valid float"), ("n_subjects=3", "benchmark"),
                         ("freeze_clip_head=maybe", "not a valid bool")):
        with pytest.raises(SystemExit, match=message):
            hv.parse_sets(DemoSettings(), [bad])


def test_fast_run_scores_head_and_ridge_on_val(tmp_path, capsys, benchmark_script):
    hv = benchmark_script("head_val")
    assert hv.main(["--seed", "3", "--output", str(tmp_path), "--fast"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("seed 3 demo settings: head within-class")
    result = json.loads((tmp_path / "seed-3" / "head_val-default.json").read_text())
    # the val split only: its distinct images are the retrieval candidates, each scored once per val EEG
    assert result["n_val"] > 0 and result["head"]["retrieval_n_way"] <= result["n_val"]
    for side in ("head", "ridge"):
        scores = result[side]
        assert 0.0 <= scores["retrieval_top1"] <= scores["retrieval_top5"] <= 1.0
        assert 0.0 <= scores["clip_within_class_2way"] <= 1.0 and -1.0 <= scores["cosine"] <= 1.0
    assert result["warmup"]["step"] >= 0 and result["ridge"]["ridge_alpha"] > 0
    # a second run with a Stage B setting reuses the benchmark and Stage A, and writes its own result
    assert hv.main(["--seed", "3", "--output", str(tmp_path), "--fast", "--set", "clip_pool_tokens=2"]) == 0
    assert len(list((tmp_path / "seed-3").glob("head_val-*.json"))) == 2
    assert [p.name for p in (tmp_path / "seed-3").glob("pretrain*")] == ["pretrain"]
    # --images: the whole Stage B, the val choices, and every val EEG's image scored as the demo scores test
    assert hv.main(["--seed", "3", "--output", str(tmp_path), "--fast", "--images"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("seed 3 demo settings: val images top-1")
    images = json.loads((tmp_path / "seed-3" / "val_images-default.json").read_text())["images"]
    scored = json.loads((tmp_path / "seed-3" / "val_images-default" / "metrics.json").read_text())
    assert scored["split"] == "val" and 0 < images["num_eeg"] <= result["n_val"]  # val, never test
    assert 0.0 <= images["top1_accuracy"] <= 1.0 and 0.0 <= images["clip_within_class_2way"] <= 1.0
    assert 0.0 <= images["ridge"]["retrieval_top1"] <= images["ridge"]["retrieval_top5"] <= 1.0
    # --redraw: the same pipeline drawn again on val; at the run's own steering it gives the run's scores exactly
    from dreamdiffusion.experiments.settings import DemoSettings

    fast = DemoSettings.fast()
    same = f"{fast.clip_guidance:g}x{fast.clip_guidance_steps}"
    assert hv.main(["--seed", "3", "--output", str(tmp_path), "--fast", "--redraw", same, "--redraw", "0x1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith(f"seed 3 steering {same}: val images top-1") and "steering 0x1" in lines[-1]
    rows = json.loads((tmp_path / "seed-3" / "redraw-default.json").read_text())["redraw"]
    assert [r["steering"] for r in rows] == [same, "0x1"]
    for key in ("top1_accuracy", "clip_within_class_2way", "pcc_within_class_2way", "num_eeg"):
        assert rows[0][key] == images[key]
    with pytest.raises(SystemExit, match="SCALExMOVES"):
        hv.main(["--seed", "3", "--output", str(tmp_path), "--fast", "--redraw", "strong"])
    with pytest.raises(SystemExit, match="--images first"):  # no --images run with these settings yet
        hv.main(["--seed", "3", "--output", str(tmp_path), "--fast", "--set", "clip_pool_tokens=2", "--redraw", "0x1"])
