"""ablate --pairs-fraction: the bookkeeping of the few-pairs study (stages stubbed: they are tested elsewhere)."""

import json

import pytest

from dreamdiffusion.cli import main
from dreamdiffusion.experiments import pairs_ablation as P
from dreamdiffusion.experiments.demo import DemoSettings


def _fake_metrics(settings, seed, baselines):
    """What evaluate would write: the method's numbers depend on MSM and the fraction, baselines on the fraction."""
    top1 = 0.2 + 0.5 * settings.pairs_fraction + (0.1 if settings.pretrain else 0.0) + 0.01 * seed
    out = {"top1_accuracy": top1, "clip_within_class_2way": 0.5 + 0.1 * settings.pairs_fraction, "n_way": 10,
           "chance": 0.1, "retrieval_top5": 0.3, "pcc_within_class_2way": 0.5, "retrieval_chance_top5": 0.02}
    if baselines:
        out["baseline_ridge_class"] = {"top1_accuracy": 0.9 * settings.pairs_fraction, "eeg_accuracy": 0.8}
        out["baseline_ridge_clip"] = {"clip_within_class_2way": 0.55, "retrieval_top5": 0.2}
    return out


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    calls = {"pretrain": [], "variants": []}
    monkeypatch.setattr(P, "build_stage", lambda seed_dir, cfg: tmp_path / "bench")
    monkeypatch.setattr(P, "resolve_components", lambda: {"base": "b", "clip": "c", "classifier": "j"})

    def pretrain(seed_dir, bench, cfg, name):
        calls["pretrain"].append((cfg.seed, cfg.settings.pretrain_steps))
        return seed_dir / name

    def variant(seed_dir, bench, encoder, cfg, tag, baselines):
        calls["variants"].append((cfg.seed, tag, encoder is not None, baselines))
        res = _fake_metrics(cfg.settings, cfg.seed, baselines)
        (seed_dir / f"evaluate-{tag}").mkdir(parents=True, exist_ok=True)
        (seed_dir / f"evaluate-{tag}" / "metrics.json").write_text(json.dumps(res))
        return res

    monkeypatch.setattr(P, "pretrain_stage", pretrain)
    monkeypatch.setattr(P, "_run_variant", variant)
    return calls


def test_pairs_ablation_runs_every_fraction_with_and_without_msm(stubbed, tmp_path):
    cfg = P.PairsAblationConfig(output=str(tmp_path / "out"), fractions=(1.0, 0.1), seeds=2, msm_steps=123,
                                settings=DemoSettings.fast())
    summary = P.run_pairs_ablation(cfg)
    # one converged Stage A per seed, shared by every fraction; baselines once per (seed, fraction)
    assert stubbed["pretrain"] == [(0, 123), (1, 123)]
    assert len(stubbed["variants"]) == 8
    assert all(msm == has_encoder == baselines for _, tag, has_encoder, baselines in stubbed["variants"]
               for msm in [not tag.startswith("no-msm")])
    low, full = summary["rows"]
    assert (low["fraction"], full["fraction"]) == (0.1, 1.0)
    assert full["msm"]["top1_accuracy"]["mean"] == pytest.approx(0.805)  # 0.2 + 0.5 + 0.1 + mean seed 0.005
    assert full["msm"]["top1_accuracy"]["sd"] == pytest.approx(0.00707, abs=1e-4)
    assert full["no_msm"]["top1_accuracy"]["runs"] == pytest.approx([0.7, 0.71])
    assert low["baselines"]["ridge_class_top1"]["mean"] == pytest.approx(0.09)
    out = tmp_path / "out"
    assert (out / "pairs_ablation.png").stat().st_size > 1000
    md = (out / "pairs_ablation.md").read_text()
    assert "| 0.1 |" in md and "0.805 ± 0.007" in md and "123 steps" in md
    assert json.loads((out / "pairs_ablation.json").read_text())["rows"][1]["fraction"] == 1.0
    # a second run with the same settings reads the finished runs back
    stubbed["variants"].clear()
    again = P.run_pairs_ablation(cfg)
    assert stubbed["variants"] == [] and again["rows"] == summary["rows"]


def test_pairs_fraction_flag_is_checked(capsys, tmp_path):
    assert main(["ablate", "--output", str(tmp_path), "--pairs-fraction", "0.1,2"]) == 2
    assert "pairs-fraction" in capsys.readouterr().err
    assert main(["ablate", "--output", str(tmp_path), "--pairs-fraction", "a,b"]) == 2
