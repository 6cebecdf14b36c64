"""The demo end to end (reduced), and the ablation's bookkeeping."""

import builtins
import dataclasses
import importlib.metadata
import importlib.util
import json
import re
from pathlib import Path

import pytest

from dreamdiffusion.cli import main
from dreamdiffusion.data.synthetic import SyntheticPairs
from dreamdiffusion.evaluation.selection import distinct_image_items, generated_clip_scores
from dreamdiffusion.experiments.ablation import (
    MODERN_VARIANT,
    ablation_markdown,
    ablation_variants,
    run_row,
    seconds_note,
    stage_a_encoder,
    summarise_ablation,
)
from dreamdiffusion.experiments.demo import METRIC_KEYS
from dreamdiffusion.experiments.settings import DemoSettings
from dreamdiffusion.models import hub
from dreamdiffusion.pipeline import DreamDiffusionPipeline

ROOT = Path(__file__).resolve().parents[1]


def modules_outside_the_demos_setup() -> set[str]:
    """Top-level modules of the extras that ``scripts/setup.sh demo`` leaves out (the README's first command)."""
    kept = re.search(r'demo\) EXTRAS="([^"]*)"', (ROOT / "scripts" / "setup.sh").read_text())
    assert kept, "scripts/setup.sh: no demo) EXTRAS= line"
    kept_extras = set(kept.group(1).split(","))
    left_out = set()
    for req in importlib.metadata.requires("dreamdiffusion") or []:
        extra = re.search(r'extra == "([^"]+)"', req)
        if extra and extra.group(1) not in kept_extras:
            left_out.add(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower().replace("_", "-"))
    dists = importlib.metadata.packages_distributions()
    return {top for top, names in dists.items() if any(n.lower().replace("_", "-") in left_out for n in names)}


@pytest.mark.slow
def test_fast_demo_runs_end_to_end(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    # the demo must run on the demo's part of the set-up: no import of a package only the full set-up installs
    # (recorded at every `import` statement, so that a module another test already loaded still counts)
    outside, asked, real_import = modules_outside_the_demos_setup(), set(), builtins.__import__
    assert {"gradio", "mne_lsl", "moabb", "mkdocs", "playwright"} <= outside

    def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.partition(".")[0] in outside:
            asked.add(name)
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", recording_import)
    assert main(["demo", "--output", str(out), "--seed", "1", "--fast"]) == 0
    monkeypatch.setattr(builtins, "__import__", real_import)
    assert not asked, f"the demo imports what `scripts/setup.sh demo` does not install: {sorted(asked)}"
    metrics = json.loads((out / "metrics.json").read_text())
    for key in METRIC_KEYS + ("judge_accuracy_real", "timings_s", "machine"):
        assert key in metrics, key
    assert metrics["n_way"] == 10 and metrics["chance"] == pytest.approx(0.1)
    assert 0.0 <= metrics["top1_accuracy"] <= 1.0
    assert 0.0 <= metrics["retrieval_top1"] <= metrics["retrieval_top5"] <= 1.0
    assert -1.0 <= metrics["ssim"] <= 1.0 and -1.0 <= metrics["pcc"] <= 1.0
    assert metrics["num_eeg"] == 8
    # selection on val only: the Stage B step by generated-image CLIP scores, the guidance among the choices
    best = json.loads((out / "finetune" / "final.json").read_text())["best"]
    assert best["metric"] == "val_gen_clip_2way"
    chosen = json.loads((out / "guidance.json").read_text())
    recommended = json.loads((out / "finetune" / "pipeline" / "generation.json").read_text())
    assert recommended["guidance_scale"] == chosen["guidance"] and recommended["num_inference_steps"] == 3
    assert [r["guidance"] for r in chosen["records"]] == [1.0, 3.0]
    top = max(r["val_gen_clip_2way"] for r in chosen["records"])
    assert metrics["guidance"] == chosen["guidance"] == min(r["guidance"] for r in chosen["records"]
                                                             if r["val_gen_clip_2way"] == top)
    report = (out / "report.md").read_text()
    for fig in ("figures/eeg_traces.png", "pretrain/reconstruction.png", "pretrain/loss.png", "finetune/loss.png",
                "evaluate/samples.png"):
        assert (out / fig).is_file(), fig
        assert f"]({fig})" in report, fig
    assert "| `top1_accuracy` |" in report
    # the low-level route (not the paper's; experiments/low_level.py): fitted on train, its strength chosen on val
    # before the guidance, and recorded where generate, the app and the stream read it
    low = json.loads((out / "low_level.json").read_text())
    assert [r["low_level_strength"] for r in low["records"]] == [1.0, 0.5]  # the paper recipe's grid
    assert recommended["low_level_strength"] == low["low_level_strength"] == metrics["low_level"]["low_level_strength"]
    assert metrics["low_level"]["fit"]["n_train"] > 0 and "low-level route (ATM)" in report
    # the guidance choice takes the strength choice's draw at select_guidance as it is: drawing it again from the
    # saved pipeline (which now carries that strength) gives the same scores
    settings = DemoSettings.fast()
    kept = next(r for r in chosen["records"] if r["guidance"] == settings.select_guidance)
    kept.pop("guidance")
    drawn = next(r for r in low["records"] if r["low_level_strength"] == low["low_level_strength"])
    assert kept == {k: v for k, v in drawn.items() if k != "low_level_strength"}
    pipe = DreamDiffusionPipeline.from_pretrained(out / "finetune" / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    clip = hub.load_clip("builtin-tiny")
    items = distinct_image_items(SyntheticPairs(out / "benchmark", "val"), settings.guidance_val_images)
    again = generated_clip_scores(pipe, items, clip.model, clip.processor, settings.steps, settings.select_guidance,
                                  seed=1)
    assert again == pytest.approx(kept)
    assert (out / "evaluate" / "metrics.md").is_file()
    # the baselines, fitted on the benchmark's train split and scored as the method (evaluation/baselines.py)
    scored = json.loads((out / "evaluate" / "metrics.json").read_text())
    assert scored["baseline_ridge_class"]["steps"] == 3 and 0.0 <= scored["baseline_ridge_class"]["eeg_accuracy"] <= 1
    assert scored["baseline_ridge_clip"]["retrieval_n_way"] == scored["retrieval_n_way"]
    assert 0.0 <= scored["clip_within_class_2way"] <= 1.0
    assert "ridge -> class lookup" in (out / "evaluate" / "metrics.md").read_text()
    assert metrics["baseline_ridge_clip"] == scored["baseline_ridge_clip"] and "ridge -> CLIP embedding" in report
    # the method's margins over the ridge map, each with its bootstrap interval, in both files and the report
    margins = scored["baseline_ridge_clip_margins"]
    assert metrics["baseline_ridge_clip_margins"] == margins and "paired bootstrap" in report
    assert margins["retrieval_top5"]["difference"] == pytest.approx(
        scored["retrieval_top5"] - scored["baseline_ridge_clip"]["retrieval_top5"])
    assert margins["clip_within_class_2way"]["low"] <= margins["clip_within_class_2way"]["difference"]
    assert metrics["linear_eeg_baseline_test"] == scored["baseline_ridge_class"]["eeg_accuracy"]
    assert "top-1 (10-way)" in capsys.readouterr().out
    # Stage A beside its reference predictors; the encoder's linear probes after Stage A and after Stage B
    a, b = metrics["stage_a"], metrics["probe_after_stage_b"]
    assert a["val_mse_zero"] > 0 and a["val_mse_interp"] > 0 and a["val_beats_interpolation"] in (True, False)
    for p in (a, b):
        assert 0.0 <= p["probe_encoder"] <= 1.0 and 0.0 <= p["probe_raw_eeg"] <= 1.0 and p["probe_n_val"] > 0
    assert b["probe_raw_eeg"] == a["probe_raw_eeg"]  # the same benchmark, bins and counts: Stage A's number reused
    assert "| interpolation |" in report and "| after Stage B |" in report
    # the untrained encoder beside the probe is named for what it is (the pca start is data-derived, not random)
    assert "| untrained encoder |" in report and "the corpus' principal components, untrained" in report

    # Same seed, same numbers: a second run in another folder agrees on every metric and every generated image.
    twin = tmp_path / "demo-again"
    assert main(["demo", "--output", str(twin), "--seed", "1", "--fast"]) == 0
    again = json.loads((twin / "metrics.json").read_text())
    for key in METRIC_KEYS + ("top1_accuracy_max", "ssim_2way", "pcc_2way", "judge_accuracy_real"):
        assert again[key] == metrics[key], key
    for png in sorted((out / "evaluate" / "samples").glob("*.png")):
        assert png.read_bytes() == (twin / "evaluate" / "samples" / png.name).read_bytes(), png.name

    # The same pipeline through `dreamdiffusion evaluate`, then re-scored from its saved images (--generated):
    # identical numbers, since scoring is seeded and the images are the same files.
    ev = tmp_path / "eval"
    args = ["--root", str(out / "benchmark"), "--limit", "4", "--num-images", "1", "--steps", "2", "--trials", "5",
            "--seed", "3"]
    assert main(["evaluate", "--model", str(out / "finetune" / "pipeline"), "--output", str(ev), *args]) == 0
    first = json.loads((ev / "metrics.json").read_text())
    assert first["num_eeg"] == 4 and (ev / "samples.png").is_file() and (ev / "samples" / "manifest.json").is_file()
    assert first["clip"] == "builtin-tiny"  # found in the model's finetune_config.json
    again = tmp_path / "eval2"
    assert main(["evaluate", "--generated", str(ev), "--output", str(again), *args]) == 0
    second = json.loads((again / "metrics.json").read_text())
    for key in ("top1_accuracy", "ssim", "pcc", "ssim_2way", "judge_accuracy_real"):
        assert second[key] == first[key], key
    assert second["retrieval_top1"] is None and "retrieval" in second["retrieval_skipped"]

    # A run whose simulated EEG is gone (seeds.sh deletes it) gets its margins back from its saved images: the
    # benchmark rebuilt from its seed, every number checked against the run's (benchmarks/rescore_margins.py)
    spec = importlib.util.spec_from_file_location("rescore_for_test", ROOT / "benchmarks" / "rescore_margins.py")
    rescore = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rescore)
    (twin / "benchmark" / "eeg.npy").unlink()
    kept = json.loads((twin / "metrics.json").read_text())["baseline_ridge_clip_margins"]
    rescored = rescore.rescore(twin)
    assert set(rescored) == set(kept)
    for key, m in rescored.items():
        assert [m["difference"], m["low"], m["high"]] == pytest.approx([kept[key][k] for k in ("difference", "low", "high")])


def test_ablation_grid_has_the_papers_structure():
    variants = ablation_variants()
    grid = [(v.pretrain, v.clip, v.encoder) for v in variants if v.mask_ratio == 0.75 and v.recipe == "paper"]
    assert len(set(grid)) == 8  # {MSM on, off} x {CLIP on, off} x {paper-shaped, small}
    ratios = sorted({v.mask_ratio for v in variants if v.pretrain and v.clip and v.encoder == "paper-shaped"})
    assert ratios == [0.25, 0.5, 0.75]
    assert len({v.name for v in variants}) == len(variants)
    assert [v.name for v in variants if v.recipe == "modern"] == [MODERN_VARIANT]  # the other recipe beside


def test_ablation_names_the_decoder_stage_a_ran_with():
    # the demo's settings give Stage A a decoder of their own: the report must name that one, not the preset's
    settings = DemoSettings.ablation()
    shape = {"embed_dim": 64, "decoder_embed_dim": 32, "decoder_depth": 1}
    named = stage_a_encoder("tiny", shape, settings)
    assert named["decoder_embed_dim"] == settings.pretrain_decoder_embed_dim != 32
    assert named["decoder_depth"] == settings.pretrain_decoder_depth != 1
    assert named["encoder_learning_rate"] == settings.pretrain_encoder_learning_rate
    paper = dataclasses.replace(settings, pretrain_decoder_embed_dim=None, pretrain_decoder_depth=None,
                                pretrain_encoder_learning_rate=None)
    assert stage_a_encoder("tiny", shape, paper) == {"preset": "tiny", **shape}


def test_ablation_summary_mean_and_spread():
    variants = ablation_variants()[:2]
    results = {variants[0].name: [{"top1_accuracy": 0.4, "n_way": 10, "chance": 0.1, "ssim": 0.2},
                                  {"top1_accuracy": 0.6, "n_way": 10, "chance": 0.1, "ssim": 0.4}],
               variants[1].name: [{"top1_accuracy": 0.1, "n_way": 10, "chance": 0.1, "ssim": None}]}
    summary = summarise_ablation(variants, results)
    row0, row1 = summary["rows"]
    assert row0["top1_accuracy_mean"] == pytest.approx(0.5)
    assert row0["top1_accuracy_std"] == pytest.approx(0.1414, abs=1e-3)  # sample sd of (0.4, 0.6)
    assert row1["top1_accuracy_std"] == 0.0 and row1["ssim_mean"] is None
    summary.update(seeds=2, machine="test", seconds=1.0, encoders={})
    md = ablation_markdown(summary)
    assert "0.500 ± 0.141" in md and variants[0].name in md
    assert "baseline" not in md  # no run carried baselines: no baseline rows


def test_ablation_baselines_count_each_seed_once():
    variants = ablation_variants()[:2]

    def run(seed, top1, ridge_top1, ridge_ret):
        return run_row({"top1_accuracy": top1, "n_way": 10, "chance": 0.1, "clip_within_class_2way": 0.55,
                        "baseline_ridge_class": {"top1_accuracy": ridge_top1},
                        "baseline_ridge_clip": {"retrieval_top1": ridge_ret, "retrieval_top5": 0.3,
                                                "clip_within_class_2way": 0.54}}, seed)

    # both variants of a seed saw the same test EEGs, so they carry the same baselines: seed 0 must count once
    results = {variants[0].name: [run(0, 0.5, 0.9, 0.05), run(1, 0.7, 0.8, 0.07)],
               variants[1].name: [run(0, 0.3, 0.9, 0.05)]}
    summary = summarise_ablation(variants, results)
    assert summary["baselines"]["ridge_class_top1"]["runs"] == [0.9, 0.8]
    assert summary["baselines"]["ridge_clip_retrieval_top1"]["mean"] == pytest.approx(0.06)
    assert summary["rows"][0]["clip_within_class_2way_mean"] == pytest.approx(0.55)
    summary.update(seeds=2, machine="test", seconds=1.0, encoders={})
    md = ablation_markdown(summary)
    assert "baseline: ridge -> class" in md and "0.850 ± 0.071" in md  # sample sd of (0.9, 0.8)
    assert "baseline: ridge -> CLIP" in md and "0.060 ± 0.014" in md


def test_ablation_time_says_when_runs_were_read_back():
    # a call that only gathers finished runs takes seconds: its time must not read as the ablation's
    assert seconds_note({"seconds": 2700.0, "runs_reused": 0, "runs_total": 11}) == "2700.0 s in this call"
    note = seconds_note({"seconds": 0.4, "runs_reused": 22, "runs_total": 22})
    assert note.startswith("0.4 s in this call") and "22 of 22 runs read back" in note


@pytest.mark.parametrize("flag,value", [("--seeds", "0"), ("--first-seed", "-1"), ("--pretrain-steps", "0"),
                                        ("--finetune-steps", "-5"), ("--num-images", "0"), ("--limit", "0"),
                                        ("--msm-steps", "0"), ("--seeds", "nan"),
                                        ("--clip-warmup-encoder-learning-rate", "-1"), ("--stage-b", "pape")])
def test_ablate_rejects_bad_numbers_before_running(tmp_path, capsys, flag, value):
    out = tmp_path / "ablate"
    assert main(["ablate", "--output", str(out), flag, value]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in err, err
    assert not out.exists()


def test_ablate_passes_the_warmup_encoder_rate_to_every_row(tmp_path, monkeypatch):
    # the flag that brings back the encoder trained in the warm-up (the ablations before 943703a) must reach the
    # per-variant settings of both ablations, and leave the demo's 0 when not given
    import dreamdiffusion.commands.demo as demo_commands

    seen = {}

    def recorder(key):
        def run(config):
            seen[key] = config.settings.clip_warmup_encoder_learning_rate
            return {"rows": []}
        return run

    monkeypatch.setattr(demo_commands, "run_ablation", recorder("table1"))
    monkeypatch.setattr(demo_commands, "run_pairs_ablation", recorder("pairs"))
    out = str(tmp_path / "a")
    assert main(["ablate", "--output", out, "--clip-warmup-encoder-learning-rate", "1e-4"]) == 0
    assert main(["ablate", "--output", out, "--pairs-fraction", "0.5", "--clip-warmup-encoder-learning-rate",
                 "1e-4"]) == 0
    assert seen == {"table1": 1e-4, "pairs": 1e-4}
    assert main(["ablate", "--output", out]) == 0
    assert seen["table1"] == DemoSettings.ablation().clip_warmup_encoder_learning_rate == 0.0


def test_ablate_passes_the_papers_stage_b_to_every_row(tmp_path, monkeypatch, capsys):
    # --stage-b paper must reach both ablations' settings; the default stays the demo's; the warm-up rate flag is the
    # demo Stage B's knob and is refused beside it in one line, nothing written
    import dreamdiffusion.commands.demo as demo_commands

    seen = {}

    def recorder(key):
        def run(config):
            seen[key] = config.settings.stage_b_name()
            return {"rows": []}
        return run

    monkeypatch.setattr(demo_commands, "run_ablation", recorder("table1"))
    monkeypatch.setattr(demo_commands, "run_pairs_ablation", recorder("pairs"))
    out = tmp_path / "a"
    assert main(["ablate", "--output", str(out), "--stage-b", "paper"]) == 0
    assert main(["ablate", "--output", str(out), "--pairs-fraction", "0.5", "--stage-b", "paper"]) == 0
    assert seen == {"table1": "paper", "pairs": "paper"}
    assert main(["ablate", "--output", str(out), "--pairs-fraction", "0.5"]) == 0
    assert seen["pairs"] == "demo"
    capsys.readouterr()
    bad = tmp_path / "b"
    assert main(["ablate", "--output", str(bad), "--stage-b", "paper", "--clip-warmup-encoder-learning-rate",
                 "1e-4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stage-b" in err[0] and not bad.exists()


def test_papers_stage_b_is_finetunes_own_defaults():
    # what `--stage-b paper` hands to finetune must be FinetuneConfig's defaults (the paper's Stage B) in every field
    # the demo's Stage B changes; and the demo's must differ in most of them, or the comparison would be empty
    from dreamdiffusion.experiments.demo import DemoConfig, stage_b_config
    from dreamdiffusion.training.finetune_config import FinetuneConfig

    names = ("tokenizer_init", "encoder_norm", "clip_head", "clip_head_prior", "freeze_clip_head", "caption_weight",
             "clip_context", "null_init", "encoder_learning_rate", "clip_warmup_encoder_learning_rate",
             "timestep_bias", "class_context")
    default = {f.name: f.default for f in dataclasses.fields(FinetuneConfig)}

    def built(settings):
        return stage_b_config(Path("f"), Path("b"), None, DemoConfig(output="o", settings=settings))

    paper, demo = DemoSettings.ablation().with_paper_stage_b(), DemoSettings.ablation()
    assert paper.stage_b_name() == "paper" and demo.stage_b_name() == DemoSettings().stage_b_name() == "demo"
    assert {n: getattr(built(paper), n) for n in names} == {n: default[n] for n in names}
    assert sum(getattr(built(demo), n) != default[n] for n in names) >= 8
    assert built(paper).clip_warmup_steps == built(demo).clip_warmup_steps > 0  # the warm-up kept in both


def test_evaluate_bad_model_is_one_line(tmp_path, capsys):
    bench = tmp_path / "not-a-benchmark"
    bench.mkdir()
    code = main(["evaluate", "--model", str(tmp_path / "missing"), "--root", str(bench), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    # the model folder is resolved first (its conditioning route decides what evaluate builds) and named
    assert str(tmp_path / "missing") in err and "pipeline folder not found" in err


def test_settings_name_each_field_once():
    """A dataclass silently keeps the last of two fields of one name: a second `align_cosine_weight` (meant as the
    paper recipe's, default 0) once took the modern recipe's 1, and the demo's Stage B refused its own settings."""
    import ast
    import inspect

    from dreamdiffusion.experiments import settings

    tree = ast.parse(inspect.getsource(settings))
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        names = [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
        assert len(names) == len(set(names)), (cls.name, sorted({n for n in names if names.count(n) > 1}))
    # and the demo's Stage B settings are ones finetune accepts
    from dreamdiffusion.training.finetune import FinetuneConfig

    s = settings.DemoSettings()
    FinetuneConfig(output="o", dataset="synthetic", align=s.align, align_cosine_weight=s.finetune_align_cosine_weight,
                   lr_scheduler=s.finetune_lr_scheduler, clip_warmup_schedule=s.clip_warmup_schedule,
                   tokenizer_init=s.tokenizer_init, null_init=s.null_init).validate()


def test_guidance_fixed_per_recipe_or_chosen_on_val():
    """The paper recipe's test guidance is chosen on val; the modern recipe's is the one its settings fix; a fixed
    ``guidance`` (the ablation's) wins for both."""
    from dreamdiffusion.experiments.settings import DemoSettings

    s = DemoSettings()
    assert s.fixed_guidance("paper") is None
    assert s.fixed_guidance("modern") == s.modern_guidance == 5.0
    assert DemoSettings(modern_guidance=None).fixed_guidance("modern") is None
    ablation = DemoSettings.ablation()
    assert ablation.fixed_guidance("paper") == ablation.fixed_guidance("modern") == ablation.guidance == 3.0
    # each recipe's steering of its test images (best of N, CLIP guidance), chosen on val
    assert s.steering("paper") == (1, 0.07) and s.steering("modern") == (1, 0.1)
    assert s.guidance_moves("paper") == 3 and s.guidance_moves("modern") == 1
    assert ablation.steering("paper") == ablation.steering("modern") == (1, 0.0)


def test_benchmark_params_are_what_the_demo_builds(tmp_path, monkeypatch):
    """The demo's benchmark and the headset benchmark's (``channel_drop --pipeline``) read one set of keywords: the
    settings' subjects, trials, images and centring, and snr / corpus size only where set."""
    from dreamdiffusion.experiments import demo as D
    from dreamdiffusion.experiments.settings import DemoConfig, DemoSettings

    seen = {}
    monkeypatch.setattr(D, "build_benchmark", lambda folder, **kw: seen.update(kw) or folder)
    s = DemoSettings(n_subjects=3, trials_per_image=2, n_corpus_windows=10)
    D.build_stage(tmp_path, DemoConfig(output=str(tmp_path), seed=5, settings=s))
    assert seen == {"seed": 5, "overwrite": False, "n_subjects": 3, "n_images": None, "trials_per_image": 2,
                    "center_subjects": True, "n_corpus_windows": 10}
    assert "snr" not in DemoSettings().benchmark_params() and DemoSettings(snr=0.1).benchmark_params()["snr"] == 0.1


def test_the_report_names_stage_a_options_beyond_the_papers_only_when_set():
    import dataclasses

    from dreamdiffusion.experiments.report import _stage_a_options
    from dreamdiffusion.experiments.settings import DemoSettings

    assert _stage_a_options(dataclasses.asdict(DemoSettings())) == (  # the demo's own start, named in full
        " (unwhitened), the patch embedding frozen, blocks started as the identity, no final norm, a decoder 64 wide,"
        " 2 blocks, the encoder at lr 0.001")
    paper = dataclasses.replace(DemoSettings(), pretrain_patch_init="xavier", pretrain_block_init="xavier",
                                pretrain_freeze_patch_embed=False, pretrain_final_norm=True,
                                pretrain_decoder_embed_dim=None, pretrain_decoder_depth=None,
                                pretrain_encoder_learning_rate=None)
    assert _stage_a_options(dataclasses.asdict(paper)) == ""  # the paper's Stage A has none of them
    words = _stage_a_options({"encoder_embed_dim": 128, "pretrain_final_norm": False,
                              "pretrain_visible_loss_weight": 0.5})
    assert words == ", width 128, no final norm, visible tokens rebuilt too (weight 0.5)"
    assert _stage_a_options({}) == ""  # a metrics.json written before the options
    assert _stage_a_options({"pretrain_patch_init": "pca", "pretrain_patch_whiten": False,
                             "pretrain_freeze_patch_embed": True}) == " (unwhitened), the patch embedding frozen"
    assert _stage_a_options({"pretrain_patch_init": "pca"}) == " (whitened)"
    assert _stage_a_options({"pretrain_patch_init": "orthogonal", "pretrain_patch_whiten": False}) == ""
    assert _stage_a_options({"pretrain_decoder_depth": 3}) == ", a decoder 3 blocks"


def test_the_report_names_the_clip_warm_up_and_the_encoders_own_rate_in_it():
    import dataclasses

    from dreamdiffusion.experiments.report import _warmup_phrase
    from dreamdiffusion.experiments.settings import DemoSettings

    demo = dataclasses.asdict(DemoSettings())
    assert _warmup_phrase(demo) == (f"; first a {demo['clip_warmup_steps']}-step CLIP warm-up at lr 0.003 "
                                    "(the encoder held still), its best val-cosine step kept")
    assert "(the encoder at 0.0003)" in _warmup_phrase({**demo, "clip_warmup_encoder_learning_rate": 3e-4})
    assert "(the encoder" not in _warmup_phrase({**demo, "clip_warmup_encoder_learning_rate": None})
    assert "(the encoder held still)" in _warmup_phrase({**demo, "clip_warmup_encoder_learning_rate": 0.0})
    assert "lr 0.01" in _warmup_phrase({**demo, "clip_warmup_learning_rate": 0.01})
    assert _warmup_phrase({**demo, "clip_warmup_steps": 0}) == ""  # no warm-up, no words
    assert _warmup_phrase({**demo, "clip_weight": 0.0}) == ""  # the no-CLIP ablation has no warm-up
    assert _warmup_phrase({}) == ""  # a metrics.json written before the warm-up
