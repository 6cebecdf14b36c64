"""Stage A pretraining: config, data order, metrics, and end-to-end runs on real EEG (tiny preset).

Real EEG: spkit's 14-channel Emotiv recording (16 s at 128 Hz), band-passed with MNE and cut into
0.5 s windows (14 x 64), z-scored per window and channel: 249 windows, 237 for training.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dreamdiffusion.cli import main as cli_main
from dreamdiffusion.core.errors import ConfigError, TrainingError
from dreamdiffusion.data.corpus import CorpusDataset, CorpusWriter
from dreamdiffusion.models.eeg_encoder import EEGEncoder, MaskedSignalModel
from dreamdiffusion.training.checkpoint import CheckpointManager
from dreamdiffusion.training.loop import (
    StepBatchSampler,
    adamw_param_groups,
    cosine_lr_at,
    read_jsonl,
    warmup_cosine_scheduler,
)
from dreamdiffusion.training.pretrain import RECORD_INDICES_ENV, PretrainConfig, masked_pearson_r, pretrain_msm
from net_helpers import free_port

N_TIMES, STRIDE = 64, 8
WEIGHTS = "diffusion_pytorch_model.safetensors"


pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def build_spkit_corpus(root: Path, raw) -> Path:
    """A corpus of windows of the spkit recording (conftest's ``spkit_raw``), filtered and z-scored."""
    import mne

    data, sfreq = raw.get_data(), raw.info["sfreq"]
    data = mne.filter.filter_data(data, sfreq, 1.0, 40.0, verbose="error")
    windows = np.stack([data[:, s:s + N_TIMES] for s in range(0, data.shape[1] - N_TIMES + 1, STRIDE)])
    windows = (windows - windows.mean(-1, keepdims=True)) / windows.std(-1, keepdims=True)
    writer = CorpusWriter(root, n_chans=data.shape[0], n_times=N_TIMES, sfreq=sfreq)
    writer.add(windows, source="spkit/EEG16SecData.pkl", subject="phyaat", sfreq_original=sfreq,
               n_chans_original=data.shape[0])
    return writer.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, spkit_recording) -> Path:
    return build_spkit_corpus(tmp_path_factory.mktemp("corpus") / "spkit", spkit_recording)


def _config(corpus: Path, output: Path, **kw) -> PretrainConfig:
    base = dict(corpus=str(corpus), output=str(output), preset="tiny", batch_size=8, learning_rate=1e-3,
                max_steps=40, warmup_steps=4, checkpoint_every=0, val_every=0, log_every=1, seed=7)
    return PretrainConfig(**{**base, **kw})


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _assert_identical(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{k} differs between {a} and {b}"


# --------------------------------------------------------------------------- units

def test_config_paper_defaults_and_json_round_trip(tmp_path):
    cfg = PretrainConfig(corpus="c", output="o")
    assert (cfg.adam_beta1, cfg.adam_beta2, cfg.weight_decay, cfg.learning_rate) == (0.9, 0.95, 0.05, 2.5e-4)
    assert (cfg.max_grad_norm, cfg.batch_size, cfg.mask_ratio, cfg.preset) == (0.8, 100, 0.75, "paper")
    assert cfg.patch_init == "xavier"  # the paper's (MAE's) start of the patch embedding
    cfg2 = PretrainConfig(corpus="c", output="o", preset="tiny", max_steps=3, checkpoints_total_limit=2)
    cfg2.to_json(tmp_path / "c.json", resolved={"total_steps": 3})
    assert PretrainConfig.from_json(tmp_path / "c.json") == cfg2
    with pytest.raises(ConfigError, match="unknown pretrain config keys: bogus"):
        PretrainConfig.from_dict({"bogus": 1})
    for bad in (dict(mask_ratio=1.0), dict(max_steps=3, epochs=2), dict(mixed_precision="fp8"),
                dict(preset="huge"), dict(batch_size=0), dict(checkpoints_total_limit=0), dict(patch_init="eye")):
        with pytest.raises(ConfigError):
            PretrainConfig(corpus="c", output="o", **bad).validate()


def test_step_sampler_resumes_exactly_and_ranks_are_disjoint():
    full = list(StepBatchSampler(50, 4, seed=3, total_steps=20))
    assert list(StepBatchSampler(50, 4, seed=3, total_steps=20, start_step=13)) == full[13:]
    # Within an epoch (12 steps of 4 out of 50 items) no window repeats; epochs reshuffle.
    epoch0 = sum(full[:12], [])
    assert len(set(epoch0)) == 48 and full[12] != full[0]
    assert list(StepBatchSampler(50, 4, seed=4, total_steps=20)) != full
    r0 = list(StepBatchSampler(50, 4, seed=3, total_steps=6, num_replicas=2, rank=0))
    r1 = list(StepBatchSampler(50, 4, seed=3, total_steps=6, num_replicas=2, rank=1))
    for a, b in zip(r0, r1):
        assert not set(a) & set(b)
    with pytest.raises(ValueError):
        StepBatchSampler(3, 4, seed=0, total_steps=1)


def test_param_groups_no_decay_on_biases_and_norms():
    model = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=16)
    decay, no_decay = adamw_param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith(".bias") or p.ndim == 1 for p in no_decay["params"])
    assert any("norm" in names[id(p)] for p in no_decay["params"])
    assert all(p.ndim >= 2 for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_warmup_cosine_schedule_values():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine_scheduler(opt, warmup_steps=4, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert lrs == pytest.approx([cosine_lr_at(s, 1.0, 4, 12) for s in range(12)])
    assert lrs[8] == pytest.approx(0.5)


def test_masked_pearson_r_counts_masked_samples_only():
    t = torch.linspace(0, 6.28, 64)
    x = torch.stack([torch.sin(t), torch.cos(3 * t)])[None]  # [1, 2, 64]
    mask = torch.zeros(1, 64)
    mask[:, 16:48] = 1
    garbage_outside = torch.where(mask[:, None].bool(), x, torch.randn_like(x) * 100)
    assert torch.allclose(masked_pearson_r(x, garbage_outside, mask), torch.ones(1, 2), atol=1e-6)
    assert torch.allclose(masked_pearson_r(x, -2 * x + 5, mask), -torch.ones(1, 2), atol=1e-6)
    assert torch.isnan(masked_pearson_r(x, torch.zeros_like(x), mask)).all()  # flat: undefined, not 0


# --------------------------------------------------------------------------- end to end (in process)

def test_pretrain_real_eeg_loss_goes_down_and_outputs_load(corpus, tmp_path):
    out = tmp_path / "run"
    cfg = _config(corpus, out, max_steps=40, val_every=20, checkpoint_every=20)
    assert pretrain_msm(cfg) == out
    records = read_jsonl(out / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 40 and all(np.isfinite(losses))
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:4]), losses
    vals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in vals] == [20, 40]
    assert vals[-1]["val_loss"] < vals[0]["val_loss"] * 1.05 and np.isfinite(vals[-1]["val_pearson_r"])
    # the reference predictors sit beside the model, on the same (fixed) masks: constant across validations
    for key in ("val_mse_zero", "val_mse_interp", "val_pearson_r_interp"):
        assert vals[0][key] == vals[-1][key] and np.isfinite(vals[-1][key])
    # z-scored windows: predicting 0 costs about their unit power
    assert 0.5 < vals[-1]["val_mse_zero"] < 1.5 and vals[-1]["val_pearson_r_zero"] == 0.0
    summary = json.loads((out / "pretrain_summary.json").read_text())
    assert summary["val_beats_interpolation"] == (summary["val_mse"] < summary["val_mse_interp"])
    assert all(r["samples_per_s"] is None or r["samples_per_s"] > 0 for r in records if "loss" in r)

    enc = EEGEncoder.from_pretrained(out)
    msm = MaskedSignalModel.from_pretrained(out / "msm")
    assert (enc.config.n_chans, enc.config.n_times) == (14, N_TIMES)
    for k, v in enc.state_dict().items():
        assert torch.equal(v, msm.encoder.state_dict()[k]), k
    with torch.no_grad():
        tokens = enc(CorpusDataset(corpus, "val")[0][None])
    assert tokens.shape == (1, N_TIMES // 4, enc.config.embed_dim) and torch.isfinite(tokens).all()

    saved = PretrainConfig.from_json(out / "pretrain_config.json")
    assert saved == cfg
    resolved = json.loads((out / "pretrain_config.json").read_text())["resolved"]
    assert resolved["total_steps"] == 40 and resolved["n_train_windows"] == 237
    from PIL import Image

    for name in ("reconstruction.png", "loss.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300
    # Nothing pickled outside checkpoints/: weights are safetensors, configs and logs JSON.
    for path in out.rglob("*"):
        if path.is_file() and "checkpoints" not in path.relative_to(out).parts:
            assert path.suffix in {".json", ".jsonl", ".safetensors", ".png"}, path
    assert [s for s, _ in CheckpointManager(out).complete_checkpoints()] == [20, 40]


def test_same_seed_same_weights_and_existing_run_refused(corpus, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    pretrain_msm(_config(corpus, a, max_steps=6))
    pretrain_msm(_config(corpus, b, max_steps=6))
    _assert_identical(a / WEIGHTS, b / WEIGHTS)
    c = tmp_path / "c"
    pretrain_msm(_config(corpus, c, max_steps=6, seed=8))
    assert not torch.equal(_tensors(a / WEIGHTS)["blocks.0.attn.qkv.weight"],
                           _tensors(c / WEIGHTS)["blocks.0.attn.qkv.weight"])
    with pytest.raises(ConfigError, match="already holds a pretraining run"):
        pretrain_msm(_config(corpus, a, max_steps=6))


def _poison_window_at_step(corpus: Path, dst: Path, cfg: PretrainConfig, step: int) -> None:
    """Copy the corpus and overwrite the first window trained at ``step`` with 3e38 (finite in
    float32, so the corpus accepts it, but its square overflows: the loss becomes Inf/NaN)."""
    import shutil

    shutil.copytree(corpus, dst)
    train = CorpusDataset(dst, "train")
    sampler = StepBatchSampler(len(train), cfg.batch_size, cfg.seed, total_steps=step + 1)
    i = sampler.indices_for_step(step)[0]
    assert all(i not in sampler.indices_for_step(s) for s in range(step))
    shard = np.load(dst / "shard-00000.npy", mmap_mode="r+")
    shard[int(train.indices[i])] = 3e38
    shard.flush()
    del shard


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    cfg = _config(corpus, out, max_steps=12, checkpoint_every=2)
    bad = tmp_path / "bad-corpus"
    _poison_window_at_step(corpus, bad, cfg, step=5)
    cfg.corpus = str(bad)
    with pytest.raises(TrainingError, match=r"loss became (nan|inf) at step 5") as info:
        pretrain_msm(cfg)
    assert "checkpoint-4" in str(info.value) and "--skip-nan-batches" in str(info.value)
    assert CheckpointManager(out).latest() == out / "checkpoints" / "checkpoint-4"
    assert not (out / WEIGHTS).exists()  # no final model from a broken run

    # The CLI says it in one line and exits 2.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    code = cli_main(["pretrain", "--corpus", str(bad), "--output", str(tmp_path / "cli"), "--preset", "tiny",
                     "--max-steps", "12", "--batch-size", "8", "--seed", "7", "--warmup-steps", "4",
                     "--learning-rate", "1e-3", "--val-every", "0", "--checkpoint-every", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and "at step 5" in err[-1] and "Traceback" not in "\n".join(err)

    AcceleratorState._reset_state(True)
    skipped = tmp_path / "skip"
    cfg2 = _config(bad, skipped, max_steps=12, skip_nan_batches=True)
    pretrain_msm(cfg2)
    summary = json.loads((skipped / "pretrain_summary.json").read_text())
    assert summary["skipped_nonfinite_steps"] == 1 and summary["steps"] == 12
    assert all(torch.isfinite(t).all() for t in _tensors(skipped / WEIGHTS).values())
    assert any(r.get("skipped_nonfinite") and r["step"] == 6 for r in read_jsonl(skipped / "metrics.jsonl"))


# --------------------------------------------------------------------------- end to end (subprocesses)

def _cli(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dreamdiffusion.cli", "pretrain", "--corpus", str(corpus), "--output", str(out),
            "--preset", "tiny", "--batch-size", "8", "--learning-rate", "1e-3", "--warmup-steps", "10",
            "--seed", "11", "--val-every", "0", "--log-every", "5", *extra]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(corpus, tmp_path):
    # killed at its first checkpoint (step 10): the 50 steps left give the poll below seconds, not milliseconds
    steps = "60"
    ref, crash = tmp_path / "ref", tmp_path / "crash"
    ref_proc = subprocess.Popen(_cli(corpus, ref, "--max-steps", steps, "--checkpoint-every", "0"), env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    args = _cli(corpus, crash, "--max-steps", steps, "--checkpoint-every", "10", "--checkpoints-total-limit", "2")
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manager = CheckpointManager(crash, total_limit=2)
    deadline = time.time() + 240
    while manager.latest() is None and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = manager.latest()
    assert killed_at is not None and not (crash / WEIGHTS).exists()

    resumed = subprocess.run(args + ["--resume"], env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert ref_proc.wait(timeout=300) == 0, ref_proc.stderr.read()[-2000:]
    summary = json.loads((crash / "pretrain_summary.json").read_text())
    assert summary["resumed_from_step"] >= 10 and summary["steps"] == int(steps)
    _assert_identical(ref / WEIGHTS, crash / WEIGHTS)
    _assert_identical(ref / "msm" / WEIGHTS, crash / "msm" / WEIGHTS)
    # The metrics log has no duplicate steps from the killed run, and rotation kept the newest two.
    train_steps = [r["step"] for r in read_jsonl(crash / "metrics.jsonl") if "loss" in r]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] == int(steps)
    assert [s for s, _ in manager.complete_checkpoints()] == [50, 60]
    assert not [p for p in (crash / "checkpoints").iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(corpus, tmp_path):
    out = tmp_path / "ddp"
    launcher = Path(sys.executable).parent / "accelerate"
    if not launcher.exists():
        pytest.skip("the accelerate launcher is not installed beside this Python")
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "-m", "dreamdiffusion.cli", "pretrain", "--corpus", str(corpus), "--output", str(out), "--preset", "tiny",
           "--max-steps", "6", "--batch-size", "8", "--checkpoint-every", "3", "--val-every", "0",
           "--log-every", "1"]
    env = {**_env(), "CUDA_VISIBLE_DEVICES": "", RECORD_INDICES_ENV: "1"}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = [json.loads((out / "seen_indices" / f"rank-{r}.json").read_text())["steps"] for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 6
    for a, b in zip(*seen):
        assert len(a) == len(b) == 8 and not set(a) & set(b)  # ranks see different windows every step
    assert EEGEncoder.from_pretrained(out).config.n_chans == 14
    assert sorted(p.name for p in out.glob("*.safetensors")) == [WEIGHTS]
    records = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]  # one writer, not two
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)
    ckpt = CheckpointManager(out).latest()
    assert ckpt.name == "checkpoint-6" and (ckpt / "random_states_1.pkl").exists()
    assert json.loads((ckpt / "trainer_state.json").read_text())["num_processes"] == 2


def test_reconstruction_figure_shades_masked_runs(tmp_path):
    from dreamdiffusion.training.plots import _true_runs, masked_only, plot_loss_curves, plot_reconstruction

    assert _true_runs(np.array([0, 1, 1, 0, 0, 1, 0, 1], bool)) == [(1, 3), (5, 6), (7, 8)]
    assert _true_runs(np.zeros(4, bool)) == []
    x = np.random.default_rng(0).standard_normal((3, 32))
    mask = np.zeros(32, bool)
    mask[8:16] = True
    # the reconstruction and interpolation are drawn where the model had to reconstruct, nowhere else
    shown = masked_only(x[0], mask)
    assert np.array_equal(shown[8:16], x[0, 8:16]) and np.isnan(shown[:8]).all() and np.isnan(shown[16:]).all()
    png = plot_reconstruction(x, x * 0.5, mask, tmp_path / "r.png", sfreq=128.0, interpolation=x * 0.2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="shapes do not match"):
        plot_reconstruction(x, x[:2], mask, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    plot_loss_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}, {"step": 2, "val_loss": 1.1,
                                                                          "val_pearson_r": 0.3}], tmp_path / "l.png")
    assert (tmp_path / "l.png").stat().st_size > 1000


def test_stage_b_loss_figure_draws_the_train_mse_beside_the_val_mse(tmp_path, monkeypatch):
    from dreamdiffusion.training import plots

    drawn = {}

    def keep(fig, path):
        drawn["labels"] = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
        drawn["ylim"] = [ax.get_ylim() for ax in fig.axes]
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    records = [{"step": 1, "loss": 0.35, "mse": 0.07}, {"step": 2, "loss": 0.33, "mse": 0.06},
               {"step": 2, "val_loss": 0.3, "val_mse": 0.075, "val_gen_clip_2way": 0.74}]
    plots.plot_loss_curves(records, tmp_path / "b.png", title="Stage B")
    assert drawn["labels"] == ["train loss", "train eps MSE", "val MSE", "val generated images, CLIP 2-way"]
    assert drawn["ylim"][1] == (0.5, 1.0)  # the selection score from chance up
    # Stage A's records (the loss is the MSE) draw no second train line and keep the Pearson r axis
    plots.plot_loss_curves([{"step": 1, "loss": 1.0}, {"step": 2, "val_mse": 0.9, "val_pearson_r": 0.3}],
                           tmp_path / "a.png")
    assert drawn["labels"] == ["train loss", "val MSE", "val Pearson r"]


def test_unknown_patch_init_is_one_line_naming_the_flag(tmp_path, capsys):
    code = cli_main(["pretrain", "--corpus", str(tmp_path), "--output", str(tmp_path / "o"), "--preset", "tiny",
                     "--patch-init", "eye"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--patch-init 'eye'" in err[0] and "orthogonal" in err[0], err


def test_corpus_spatial_filters_whiten_the_patch_means_leading_components_first():
    from dreamdiffusion.training.pretrain import corpus_spatial_filters

    rng = np.random.default_rng(0)
    mixing = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    scales = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.25])  # source spreads, one per direction of the mixing
    windows = [torch.from_numpy(mixing @ (scales[:, None] * rng.standard_normal((6, 64)))).float() for _ in range(300)]
    filters = corpus_spatial_filters(windows, 4, patch_size=1, seed=0).double().numpy()  # [4, 6]
    means = np.stack([w.numpy() for w in windows]).transpose(0, 2, 1).reshape(-1, 6)
    cov = filters @ np.cov(means.T) @ filters.T
    assert np.allclose(cov, np.eye(4), atol=1e-6)  # whitened: unit variance, uncorrelated
    # leading components first: filter k reads source direction k (up to sign), the weakest two are dropped
    cosines = np.abs(filters @ mixing) / np.linalg.norm(filters, axis=1, keepdims=True)
    assert np.all(cosines.argmax(axis=1) == np.arange(4)) and cosines.max(axis=1).min() > 0.95
    with pytest.raises(ConfigError, match="orthogonal"):
        corpus_spatial_filters(windows, 7, patch_size=1, seed=0)
    # unwhitened: the same components at unit norm, the EEG's own scales kept (variance = the source's spread^2)
    raw = corpus_spatial_filters(windows, 4, patch_size=1, seed=0, whiten=False).double().numpy()
    assert np.allclose(raw @ raw.T, np.eye(4), atol=1e-6)
    assert np.allclose(np.abs(raw @ mixing[:, :4]), np.eye(4), atol=0.05)
    assert np.allclose(np.diag(raw @ np.cov(means.T) @ raw.T), scales[:4] ** 2, rtol=0.15)


def test_unknown_block_init_is_one_line_naming_the_flag(tmp_path, capsys):
    code = cli_main(["pretrain", "--corpus", str(tmp_path), "--output", str(tmp_path / "o"), "--preset", "tiny",
                     "--block-init", "ones"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--block-init 'ones'" in err[0] and "zero" in err[0], err
    assert PretrainConfig(corpus="c", output="o").block_init == "xavier"  # the paper's


def test_loss_and_encoder_options_reach_the_model_and_a_bad_one_is_one_line(corpus, tmp_path, capsys):
    out = tmp_path / "vis"
    code = cli_main(["pretrain", "--corpus", str(corpus), "--output", str(out), "--preset", "tiny",
                     "--max-steps", "2", "--batch-size", "8", "--checkpoint-every", "0", "--val-every", "0",
                     "--visible-loss-weight", "0.5", "--no-final-norm", "--embed-dim", "32"])
    assert code == 0
    msm = MaskedSignalModel.from_pretrained(out / "msm")
    assert (msm.config.visible_loss_weight, msm.config.final_norm, msm.config.embed_dim) == (0.5, False, 32)
    enc = EEGEncoder.from_pretrained(out)
    assert isinstance(enc.norm, torch.nn.Identity) and enc.config.embed_dim == 32
    saved = PretrainConfig.from_json(out / "pretrain_config.json")
    assert (saved.visible_loss_weight, saved.final_norm, saved.embed_dim) == (0.5, False, 32)
    # the val loss is the training loss (masked + 0.5 x visible); the val MSE beside interpolation stays masked only
    summary = json.loads((out / "pretrain_summary.json").read_text())
    assert summary["val_loss"] > summary["val_mse"] * 1.2
    capsys.readouterr()
    code = cli_main(["pretrain", "--corpus", str(corpus), "--output", str(tmp_path / "bad"), "--preset", "tiny",
                     "--visible-loss-weight", "-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--visible-loss-weight" in err[0], err
    code = cli_main(["pretrain", "--corpus", str(corpus), "--output", str(tmp_path / "bad"), "--preset", "tiny",
                     "--embed-dim", "30"])  # the tiny preset's 4 heads do not divide 30
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tiny" in err[0], err
    paper = PretrainConfig(corpus="c", output="o")  # the paper's: masked tokens only, the final norm, the preset's width
    assert (paper.visible_loss_weight, paper.final_norm, paper.embed_dim) == (0.0, True, None)


def test_a_frozen_unwhitened_pca_start_stays_as_the_corpus_gave_it(corpus, tmp_path):
    from dreamdiffusion.data.corpus import CorpusDataset
    from dreamdiffusion.training.pretrain import corpus_spatial_filters

    out = tmp_path / "frozen"
    code = cli_main(["pretrain", "--corpus", str(corpus), "--output", str(out), "--preset", "tiny",
                     "--max-steps", "3", "--batch-size", "8", "--checkpoint-every", "0", "--val-every", "0",
                     "--patch-init", "pca", "--no-patch-whiten", "--freeze-patch-embed", "--no-final-norm",
                     "--embed-dim", "8"])  # the corpus has 14 channels: at most 14 components
    assert code == 0
    enc = EEGEncoder.from_pretrained(out)
    d, c, p = enc.patch_embed.weight.shape
    filters = corpus_spatial_filters(CorpusDataset(corpus, "train", val_fraction=PretrainConfig(corpus="c", output="o").val_fraction),
                                     d, p, seed=PretrainConfig(corpus="c", output="o").seed, whiten=False)
    assert torch.allclose(enc.patch_embed.weight, filters[:, :, None].expand(d, c, p) / p ** 0.5, atol=1e-6)
    first = MaskedSignalModel.from_pretrained(out / "msm")  # the blocks did train
    assert any(v.abs().sum() > 0 for k, v in first.encoder.state_dict().items() if "blocks.0.attn.proj" in k)
    saved = PretrainConfig.from_json(out / "pretrain_config.json")
    assert (saved.patch_whiten, saved.freeze_patch_embed) == (False, True)
    paper = PretrainConfig(corpus="c", output="o")
    assert (paper.patch_whiten, paper.freeze_patch_embed) == (True, False)
    with pytest.raises(ConfigError, match="--no-patch-whiten is for --patch-init pca"):
        PretrainConfig(corpus="c", output="o", patch_init="orthogonal", patch_whiten=False).validate()


def test_the_encoders_own_rate_and_the_decoders_size_reach_stage_a(corpus, tmp_path, capsys):
    from accelerate import Accelerator

    from dreamdiffusion.training.pretrain import _prepare

    model = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=16)
    config = PretrainConfig(corpus="c", output="o", learning_rate=3e-3, encoder_learning_rate=1e-3)
    _, optimizer, _ = _prepare(Accelerator(cpu=True), model, config, {"warmup_steps": 1, "total_steps": 4,
                                                                      "num_processes": 1})
    encoder = {id(p) for p in model.encoder.parameters()}
    rates = {id(p): (g["initial_lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    assert rates and all(lr == (1e-3 if pid in encoder else 3e-3) for pid, (lr, _) in rates.items())
    assert {wd for _, wd in rates.values()} == {0.0, config.weight_decay}  # the decay split kept in both parts
    assert len(rates) == sum(p.requires_grad for p in model.parameters())
    one = PretrainConfig(corpus="c", output="o")  # the paper's: one rate, the preset's decoder
    assert (one.encoder_learning_rate, one.decoder_embed_dim, one.decoder_depth) == (None, None, None)

    out = tmp_path / "dec"
    code = cli_main(["pretrain", "--corpus", str(corpus), "--output", str(out), "--preset", "tiny",
                     "--max-steps", "2", "--batch-size", "8", "--checkpoint-every", "0", "--val-every", "0",
                     "--encoder-learning-rate", "1e-4", "--decoder-embed-dim", "16", "--decoder-depth", "2"])
    assert code == 0
    msm = MaskedSignalModel.from_pretrained(out / "msm")
    assert (msm.config.decoder_embed_dim, msm.config.decoder_depth, len(msm.decoder_blocks)) == (16, 2, 2)
    saved = PretrainConfig.from_json(out / "pretrain_config.json")
    assert (saved.encoder_learning_rate, saved.decoder_embed_dim, saved.decoder_depth) == (1e-4, 16, 2)
    capsys.readouterr()
    for flag, value in (("--encoder-learning-rate", "0"), ("--decoder-depth", "0")):
        code = cli_main(["pretrain", "--corpus", str(corpus), "--output", str(tmp_path / "bad"), "--preset", "tiny",
                         flag, value])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and flag in err[0], err
