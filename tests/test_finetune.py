"""Stage B fine-tuning (training/finetune.py) and the finetune/generate CLI, end to end on tiny models."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dreamdiffusion.cli import main
from dreamdiffusion.core.errors import ConfigError, TrainingError
from dreamdiffusion.models.eeg_encoder import EEGEncoder
from dreamdiffusion.training.finetune import FinetuneConfig, Trainer, finetune
from dreamdiffusion.training.finetune_trainer import RECORD_PAIRS_ENV
from dreamdiffusion.training.loop import StepBatchSampler
from net_helpers import free_port
from stageb_helpers import PairList, make_folder_dataset

pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")  # parts: conftest.py


def _cfg(parts, out, **kw):
    base = dict(output=str(out), encoder=str(parts / "enc"), base=str(parts / "base"), clip=str(parts / "clip"),
                batch_size=2, max_steps=2, validate_every=0, validation_images=0, checkpoint_every=0, seed=3)
    return FinetuneConfig(**{**base, **kw})


def _weights(folder: Path) -> dict:
    return load_file(str(next(folder.glob("*.safetensors"))))


def test_cli_finetune_then_generate(parts, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune", "--dataset", "folder", "--root", str(parts / "data"), "--encoder", str(parts / "enc128"),
                 "--base", str(parts / "base"), "--clip", str(parts / "clip"), "--output", str(out),
                 "--batch-size", "2", "--max-steps", "2", "--checkpoint-every", "1", "--checkpoints-total-limit", "1",
                 "--validate-every", "2", "--validation-images", "1", "--seed", "1", "--channel-mapping", "repeat"])
    assert code == 0, capsys.readouterr().err
    pipe_dir = out / "pipeline"
    for f in ("model_index.json", "preprocessing.json", "unet/config.json", "eeg_conditioner/config.json"):
        assert (pipe_dir / f).is_file(), f
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-2"]  # rotation kept 1
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert "val_loss" in rows[-1] and (out / "validation" / "step-0000002.png").is_file()
    assert (out / "loss.png").is_file() and json.loads((out / "finetune_config.json").read_text())["train"] == "paper"
    assert json.loads((pipe_dir / "preprocessing.json").read_text())["n_chans"] == 128

    # trained modules changed; frozen ones are bit-identical
    before_unet, after_unet = _weights(parts / "base" / "unet"), _weights(pipe_dir / "unet")
    changed = {k for k in before_unet if not torch.equal(before_unet[k], after_unet[k])}
    assert changed and all((".attn2." in k or ".norm2." in k) and ".transformer_blocks." in k for k in changed)
    assert any(".attn2.to_k." in k for k in changed)
    before_vae, after_vae = _weights(parts / "base" / "vae"), _weights(pipe_dir / "vae")
    assert before_vae.keys() == after_vae.keys() and all(torch.equal(before_vae[k], after_vae[k]) for k in before_vae)
    enc_before = {k: v for k, v in _weights(parts / "enc128").items() if k.startswith("encoder.")}
    cond_after = _weights(pipe_dir / "eeg_conditioner")
    assert any(not torch.equal(v, cond_after[k]) for k, v in enc_before.items())  # the encoder trained

    gen = tmp_path / "gen"
    code = main(["generate", "--model", str(out), "--dataset", "folder", "--root", str(parts / "data"),
                 "--split", "test", "--limit", "1", "--num-images", "2", "--steps", "2", "--guidance", "2",
                 "--seed", "4", "--output", str(gen), "--scheduler", "ddim"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((gen / "manifest.json").read_text())
    assert manifest["scheduler"] == "DDIMScheduler" and manifest["items"][0]["eeg"]["split"] == "test"
    assert len(manifest["items"]) == 1 and all((gen / f).is_file() for f in manifest["items"][0]["images"])
    assert (gen / manifest["items"][0]["ground_truth"]).is_file() and (gen / "grid.png").is_file()

    code = main(["generate", "--model", str(out), "--eeg-file", str(parts / "data" / "rec0_raw.fif"),
                 "--onset", "1.5", "--onset", "4", "--num-images", "1", "--steps", "2", "--output", str(tmp_path / "g2"),
                 "--channel-mapping", "montage"])
    assert code == 0, capsys.readouterr().err
    items = json.loads((tmp_path / "g2" / "manifest.json").read_text())["items"]
    assert [i["eeg"]["onset_s"] for i in items] == [1.5, 4.0] and items[0]["ground_truth"] is None
    channels = items[0]["eeg"]["channels"]  # the manifest says how the file's channels were mapped
    assert channels["requested"] == "montage" and channels["used"] in ("montage", "repeat")
    assert channels["recorded_channels"] == len(channels["names"]) and channels == items[1]["eeg"]["channels"]


def test_clip_frozen_and_clip_loss_falls(parts, tmp_path):
    ds = PairList(2)  # one fixed batch
    cfg = _cfg(parts, tmp_path / "o", train="encoder", max_steps=8, learning_rate=2e-3, cond_dropout=0.0)
    trainer = Trainer(cfg, ds, None)
    trainer.setup()
    clip_before = {k: v.clone() for k, v in trainer.parts.clip.state_dict().items()}
    unet_before = {k: v.clone() for k, v in trainer.parts.unet.state_dict().items()}
    assert not any(p.requires_grad for p in trainer.parts.clip.parameters())
    trainer.run()
    assert all(torch.equal(clip_before[k], v) for k, v in trainer.parts.clip.state_dict().items())
    assert all(torch.equal(unet_before[k], v) for k, v in trainer.parts.unet.state_dict().items())  # --train encoder
    rows = [json.loads(s) for s in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    clip_losses = [r["clip_loss"] for r in rows]
    assert clip_losses[-1] < clip_losses[0] - 0.05, clip_losses


def test_clip_warmup_aligns_encoder_only_and_keeps_best_val_step(parts, tmp_path):
    ds = PairList(4)
    cfg = _cfg(parts, tmp_path / "o", clip_warmup_steps=6, clip_warmup_learning_rate=3e-3, encoder_learning_rate=1e-4,
               learning_rate=1e-3, unet_learning_rate=5e-4)
    trainer = Trainer(cfg, ds, PairList(2))
    from dreamdiffusion.models.conditioner import load_encoder

    enc_before = load_encoder(parts / "enc").state_dict()
    trainer.setup()
    summary = json.loads((tmp_path / "o" / "clip_warmup.json").read_text())
    records = summary["records"]
    assert [r["step"] for r in records] == list(range(1, 7))
    best = max(records, key=lambda r: r["val_clip_cos"])
    assert summary["best"]["step"] == best["step"] and summary["best"]["val_clip_cos"] == best["val_clip_cos"]
    encoder = trainer.parts.conditioner.encoder.state_dict()
    assert any(not torch.equal(enc_before[k], encoder[k]) for k in enc_before)  # the warm-up trained the encoder
    # the diffusion phase trains the encoder, the UNet and the new layers each with its own learning rate
    lr_of = {id(q): g["lr"] for g in trainer.optimizer.param_groups for q in g["params"]}
    cond, unet = trainer.parts.conditioner, trainer.parts.unet
    assert {lr_of[id(q)] for q in cond.encoder.parameters()} == {1e-4}
    assert {lr_of[id(q)] for q in unet.parameters() if q.requires_grad} == {5e-4}
    assert {lr_of[id(q)] for q in cond.dim_mapper.parameters()} | {lr_of[id(cond.null_cond)]} == {1e-3}
    assert len(lr_of) == sum(q.requires_grad for q in trainer.system.parameters())


def test_clip_warmup_encoder_learning_rate_0_keeps_stage_as_encoder_and_trains_the_head(parts, tmp_path):
    from dreamdiffusion.models.conditioner import load_encoder

    cfg = _cfg(parts, tmp_path / "o", clip_warmup_steps=4, clip_warmup_learning_rate=3e-3,
               clip_warmup_encoder_learning_rate=0.0)
    trainer = Trainer(cfg, PairList(4), PairList(2))
    enc_before = load_encoder(parts / "enc").state_dict()
    trainer.setup()
    cond = trainer.parts.conditioner
    assert all(torch.equal(enc_before[k], v) for k, v in cond.encoder.state_dict().items())
    records = json.loads((tmp_path / "o" / "clip_warmup.json").read_text())["records"]
    assert len({r["val_clip_cos"] for r in records}) == len(records)  # the head alone moved the val cosine
    # the joint phase trains the encoder again (its flags restored after the warm-up)
    assert all(q.requires_grad for q in cond.encoder.parameters())
    with pytest.raises(ConfigError, match="clip_warmup_encoder_learning_rate"):
        _cfg(parts, tmp_path / "p", clip_warmup_steps=4, clip_warmup_encoder_learning_rate=-1.0).validate()


def test_clip_warmup_with_the_encoder_held_still_computes_its_tokens_once_and_matches(parts, tmp_path, monkeypatch):
    import dreamdiffusion.training.clip_warmup as warmup

    def run(out, cache_bytes):
        monkeypatch.setattr(warmup, "TOKEN_CACHE_BYTES", cache_bytes)
        torch.manual_seed(0)  # the new layers' start
        cfg = _cfg(parts, out, clip_warmup_steps=5, clip_warmup_learning_rate=3e-3,
                   clip_warmup_encoder_learning_rate=0.0)
        trainer = Trainer(cfg, PairList(6), PairList(3))
        calls = []
        original = EEGEncoder.forward
        monkeypatch.setattr(EEGEncoder, "forward", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
        trainer.setup()
        monkeypatch.setattr(EEGEncoder, "forward", original)
        summary = json.loads((out / "clip_warmup.json").read_text())
        assert summary["tokens_computed_once"] is (cache_bytes > 0) and summary["seconds"] > 0
        head = {k: v for k, v in trainer.parts.conditioner.state_dict().items() if not k.startswith("encoder.")}
        return len(calls), [r["val_clip_cos"] for r in summary["records"]], head

    n_cached, cos_cached, head_cached = run(tmp_path / "a", 1 << 30)
    n_plain, cos_plain, head_plain = run(tmp_path / "b", 0)  # past the limit: through the encoder at every step
    assert n_cached < n_plain
    assert cos_cached == pytest.approx(cos_plain, abs=1e-5)
    assert all(torch.allclose(head_cached[k], head_plain[k], atol=1e-5) for k in head_plain)


def test_clip_warmup_cosine_schedule_decays_to_zero(parts, tmp_path):
    cfg = _cfg(parts, tmp_path / "o", clip_warmup_steps=6, clip_warmup_learning_rate=3e-3,
               clip_warmup_schedule="cosine")
    Trainer(cfg, PairList(4), PairList(2)).setup()
    lrs = [r["lr"] for r in json.loads((tmp_path / "o" / "clip_warmup.json").read_text())["records"]]
    assert lrs[0] == pytest.approx(3e-3) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(3e-3 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))  # the last step's rate: near 0
    with pytest.raises(ConfigError, match="clip-warmup-schedule"):
        FinetuneConfig(clip_warmup_schedule="linear").validate()


def test_lr_scheduler_runs_over_the_joint_steps(parts, tmp_path):
    # The schedule's length is the run's steps (it once was 10**9 steps, so "cosine" stayed constant).
    trainer = Trainer(_cfg(parts, tmp_path / "o", max_steps=4, learning_rate=1e-3, lr_scheduler="cosine"),
                      PairList(4), None)
    trainer.setup()
    trainer.run()
    rows = [json.loads(s) for s in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    # each record holds the rate after its step: cos decay over 4 steps
    assert [r["lr"] for r in rows] == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)])
    with pytest.raises(ConfigError, match="lr-scheduler"):
        FinetuneConfig(lr_scheduler="steep").validate()


def test_encoder_learning_rate_0_freezes_the_encoder_after_the_warmup(parts, tmp_path):
    cfg = _cfg(parts, tmp_path / "o", clip_warmup_steps=3, clip_warmup_learning_rate=3e-3, encoder_learning_rate=0.0,
               max_steps=2, select="last")
    trainer = Trainer(cfg, PairList(4), PairList(2))
    from dreamdiffusion.models.conditioner import load_encoder

    enc_start = load_encoder(parts / "enc").state_dict()
    trainer.setup()
    cond = trainer.parts.conditioner
    after_warmup = {k: v.detach().clone() for k, v in cond.encoder.state_dict().items()}
    assert any(not torch.equal(enc_start[k], after_warmup[k]) for k in enc_start)  # the warm-up trained it
    assert not any(q.requires_grad for q in cond.encoder.parameters())
    assert all(id(q) not in {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
               for q in cond.encoder.parameters())
    mapper_before = {k: v.detach().clone() for k, v in cond.dim_mapper.state_dict().items()}
    trainer.run()
    after = cond.encoder.state_dict()
    assert all(torch.equal(after_warmup[k], after[k]) for k in after)  # the joint phase did not move it
    assert any(not torch.equal(mapper_before[k], v) for k, v in cond.dim_mapper.state_dict().items())
    saved = _weights(tmp_path / "o" / "pipeline" / "eeg_conditioner")
    assert all(torch.equal(after_warmup[k], saved[f"encoder.{k}"]) for k in after_warmup)
    with pytest.raises(ConfigError, match="encoder_learning_rate"):
        FinetuneConfig(output="x", encoder_learning_rate=-1.0).validate()


def test_freeze_clip_head_keeps_the_warmups_head_through_the_joint_phase(parts, tmp_path):
    cfg = _cfg(parts, tmp_path / "o", clip_warmup_steps=3, clip_warmup_learning_rate=3e-3, freeze_clip_head=True,
               max_steps=2, select="last")
    trainer = Trainer(cfg, PairList(4), PairList(2))
    trainer.setup()
    cond = trainer.parts.conditioner
    head = {n: q.detach().clone() for n, q in cond.named_parameters() if n.split(".")[0] in ("clip_pool", "clip_proj")}
    in_optimizer = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert head and not any(q.requires_grad or id(q) in in_optimizer
                            for n, q in cond.named_parameters() if n in head)
    encoder_before = {k: v.detach().clone() for k, v in cond.encoder.state_dict().items()}
    trainer.run()
    params = dict(cond.named_parameters())
    assert all(torch.equal(head[n], params[n]) for n in head)  # the joint phase left the head where the warm-up did
    assert any(not torch.equal(encoder_before[k], v) for k, v in cond.encoder.state_dict().items())  # not the encoder
    saved = _weights(tmp_path / "o" / "pipeline" / "eeg_conditioner")
    assert all(torch.equal(head[n], saved[n]) for n in head)
    with pytest.raises(ConfigError, match="clip-warmup-steps"):
        FinetuneConfig(output="x", freeze_clip_head=True).validate()


@pytest.mark.parametrize("kind,within,prior", [("filters", 0.0, 0), ("eeg", 0.0, 0), ("eeg", 1.0, 0), ("eeg", 0.0, 8)])
def test_clip_head_filters_is_refitted_after_the_warmup_and_saved_with_the_pipeline(parts, tmp_path, kind, within,
                                                                                     prior):
    """--clip-head filters|eeg: after the warm-up the encoder's frozen tokens (eeg: the EEG windows) get a new
    low-rank head (ridge start, then InfoNCE + cos), which replaces the pooled one, stays frozen through the joint
    phase and loads with the pipeline."""
    cfg = _cfg(parts, tmp_path / "o", clip_warmup_steps=2, freeze_clip_head=True, clip_head=kind,
               clip_head_filters=2, clip_head_bins=4, clip_head_steps=3, max_steps=1, select="last",
               clip_head_within_class_weight=within, clip_head_prior=prior, clip_head_prior_steps=4)
    trainer = Trainer(cfg, PairList(6), PairList(2))
    trainer.setup()
    cond = trainer.parts.conditioner
    record = json.loads((tmp_path / "o" / "clip_head_refit.json").read_text())
    assert record["steps"] == 3 and record["train_trials"] == 6 and record["scale"] > 0 and record["head"] == kind
    assert record["within_class_weight"] == within
    assert math.isfinite(record["val_clip_cos_after"]) and math.isfinite(record["ridge_alpha"])
    assert cond.clip_pool is None and cond.config.clip_head == kind
    assert cond.clip_filters.config.in_chans == cond.head_input_shape(kind)[0]
    assert cond.config.clip_head_scale == pytest.approx(record["scale"])
    if prior:  # kept only where it raised the val cosine; the record says which, and the conditioner agrees
        rec = record["prior"]
        assert (rec["hidden"], rec["steps"]) == (8, 4) and math.isfinite(rec["val_clip_cos_with"])
        assert rec["used"] == (rec["val_clip_cos_with"] > rec["val_clip_cos_without"])
        assert (cond.clip_prior is not None) == rec["used"] and cond.config.clip_head_prior == 8 * rec["used"]
    else:
        assert "prior" not in record and cond.clip_prior is None
    head = {n: q.detach().clone() for n, q in cond.named_parameters() if n.startswith(("clip_filters.", "clip_prior."))}
    assert head and not any(q.requires_grad for n, q in cond.named_parameters() if n in head)
    assert len((tmp_path / "o" / "clip_head_refit.jsonl").read_text().splitlines()) == 3
    trainer.run()
    saved = _weights(tmp_path / "o" / "pipeline" / "eeg_conditioner")
    assert all(torch.equal(head[n], saved[n]) for n in head)
    assert not any(k.startswith(("clip_pool.", "clip_proj.")) for k in saved)
    with pytest.raises(ConfigError, match="clip-head"):
        FinetuneConfig(output="x", clip_head="mlp").validate()
    with pytest.raises(ConfigError, match="within-class-weight"):  # the paper's pooled head is not refitted
        FinetuneConfig(output="x", clip_head_within_class_weight=1.0).validate()
    with pytest.raises(ConfigError, match="clip-head-prior"):
        FinetuneConfig(output="x", clip_head_prior=8).validate()
    if within:  # the within-class loss reads each train image's label, and says so where there is none
        from dreamdiffusion.training.clip_head_refit import _image_classes
        assert _image_classes([{"label": 7}, {"label": 3}, {"label": 7}]).tolist() == [1, 0, 1]
        with pytest.raises(ConfigError, match="labelled"):
            _image_classes([{"image_name": "a"}])


@pytest.mark.parametrize("head", [{}, dict(clip_warmup_steps=2, freeze_clip_head=True, clip_head="filters",
                                          clip_head_filters=2, clip_head_bins=4, clip_head_steps=3),
                                  dict(clip_warmup_steps=2, freeze_clip_head=True, clip_head="eeg",
                                       clip_head_filters=2, clip_head_bins=4, clip_head_steps=3),
                                  dict(clip_warmup_steps=2, freeze_clip_head=True, clip_head="eeg",
                                       clip_head_filters=2, clip_head_bins=4, clip_head_steps=3, clip_head_prior=8,
                                       clip_head_prior_steps=4)],
                         ids=["paper", "clip-head-filters", "clip-head-eeg", "clip-head-eeg-prior"])
def test_resume_matches_uninterrupted_run(parts, tmp_path, head):
    ds = PairList(6)
    kw = dict(checkpoint_every=1, select="last", cond_dropout=0.5, **head)
    full = finetune(_cfg(parts, tmp_path / "full", max_steps=3, **kw), ds)
    finetune(_cfg(parts, tmp_path / "cut", max_steps=1, **kw), ds)  # stands for a run killed after step 1
    resumed = finetune(_cfg(parts, tmp_path / "cut", max_steps=3, resume=True, **kw), ds)
    for sub in ("unet", "eeg_conditioner"):
        a, b = _weights(full / sub), _weights(resumed / sub)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), sub
    if head.get("clip_head_prior"):  # no val set: the prior is kept, saved, and rebuilt blank on resume to load
        assert any(k.startswith("clip_prior.") for k in _weights(resumed / "eeg_conditioner"))
    configs = [json.loads((run / "eeg_conditioner" / "config.json").read_text()) for run in (full, resumed)]
    assert configs[0]["clip_head_scale"] == configs[1]["clip_head_scale"]  # the refit's scale, not a default
    assert configs[0].get("clip_head_prior") == configs[1].get("clip_head_prior") == head.get("clip_head_prior", 0)
    steps = [json.loads(s)["step"] for s in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    with pytest.raises(ConfigError, match="earlier run; pass --resume"):  # never silently overwrite a run
        finetune(_cfg(parts, tmp_path / "cut", max_steps=3, **kw), ds)


def test_lora_bf16_accumulation_checkpointing(parts, tmp_path):
    """LoRA in bf16 with gradient accumulation and checkpointing: adapters fused into an fp32 UNet whose
    frozen weights are the base's exactly (reloaded, not the bf16-rounded training copy)."""
    from dreamdiffusion.pipeline import DreamDiffusionPipeline

    out = finetune(_cfg(parts, tmp_path / "lora", train="lora", learning_rate=1e-2, max_steps=1,
                        mixed_precision="bf16", gradient_accumulation_steps=2, gradient_checkpointing=True),
                   PairList(4))
    unet, base = _weights(out / "unet"), _weights(parts / "base" / "unet")
    assert unet.keys() == base.keys() and not [k for k in unet if "lora" in k]
    assert all(v.dtype == torch.float32 for v in unet.values())
    assert any(not torch.equal(unet[k], base[k]) for k in base if ".to_q." in k)  # LoRA deltas were merged
    assert all(torch.equal(unet[k], base[k]) for k in base if ".attn" not in k)  # nothing else moved
    vae, base_vae = _weights(out / "vae"), _weights(parts / "base" / "vae")
    assert all(torch.equal(vae[k], base_vae[k]) for k in base_vae)
    DreamDiffusionPipeline.from_pretrained(out)  # loads as a plain pipeline


def test_finetune_never_opens_the_test_split(parts, tmp_path, monkeypatch):
    import dreamdiffusion.training.stageb as stageb

    opened = []

    def fake_open(name, split, **options):
        opened.append((name, split, options))
        return PairList(4, seed=len(opened))

    monkeypatch.setattr(stageb, "open_paired_dataset", fake_open)
    finetune(_cfg(parts, tmp_path / "s", dataset="mine", dataset_options={"root": "x"}, max_steps=1,
                  train="encoder", validation_images=1, validation_inference_steps=1))
    assert [o[1] for o in opened] == ["train", "val"] and all(o[2] == {"root": "x"} for o in opened)
    rows = [json.loads(s) for s in (tmp_path / "s" / "metrics.jsonl").read_text().splitlines()]
    assert "val_loss" in rows[-1] and "val_clip_cos" in rows[-1]


class _PoisonAfter(PairList):
    """Fine for the first calls, then EEG full of NaN (a numeric blow-up mid-run)."""

    def __init__(self, n, ok_calls):
        super().__init__(n)
        self.calls, self.ok_calls = 0, ok_calls

    def __getitem__(self, i):
        self.calls += 1
        item = dict(super().__getitem__(i))
        if self.calls > self.ok_calls:
            item["eeg"] = torch.full_like(item["eeg"], float("nan"))
        return item


def test_nan_loss_stops_and_keeps_last_good_checkpoint(parts, tmp_path):
    ds = _PoisonAfter(2, ok_calls=5)  # setup reads 1 item; steps 1 and 2 read 2 each
    with pytest.raises(TrainingError) as err:
        finetune(_cfg(parts, tmp_path / "nan", max_steps=4, checkpoint_every=1), ds)
    assert "step 2" in str(err.value) and "checkpoint-2" in str(err.value)
    from dreamdiffusion.training.checkpoint import CheckpointManager

    assert CheckpointManager(tmp_path / "nan").latest().name == "checkpoint-2"
    assert not (tmp_path / "nan" / "pipeline").exists()


def test_ranks_see_disjoint_data_and_resume_offsets():
    # Stage B's sampler is the shared one: one micro-batch per sampler step
    a = list(StepBatchSampler(20, 3, seed=1, total_steps=6, num_replicas=2, rank=0))
    b = list(StepBatchSampler(20, 3, seed=1, total_steps=6, num_replicas=2, rank=1))
    assert all(not set(x) & set(y) for x, y in zip(a, b))  # same step, different pairs
    assert a[:3] != a[3:]  # a new permutation each epoch (3 micro-batches per epoch here)
    assert list(StepBatchSampler(20, 3, seed=1, total_steps=6, start_step=4, num_replicas=2, rank=0)) == a[4:]


@pytest.mark.parametrize("case", ["unknown_base", "encoder_channels", "missing_image"])
def test_bad_input_one_line_error(parts, tmp_path, capsys, case):
    data, encoder, base = parts / "data", parts / "enc128", str(parts / "base")
    if case == "unknown_base":
        base = "no-such-model"
    elif case == "encoder_channels":
        encoder = parts / "enc"  # 8-channel encoder, 128-channel pairs
    else:
        data = make_folder_dataset(tmp_path / "data", missing_image=True)
    code = main(["finetune", "--dataset", "folder", "--root", str(data), "--encoder", str(encoder), "--base", base,
                 "--clip", str(parts / "clip"), "--output", str(tmp_path / "o"), "--batch-size", "2",
                 "--max-steps", "1", "--validation-images", "0"])
    lines = capsys.readouterr().err.strip().splitlines()
    err = [s for s in lines if s.startswith("error: ")]
    assert code == 2 and len(err) == 1 and not [s for s in lines if "Traceback" in s], lines
    expected = {"unknown_base": "no-such-model: unknown --base",
                "encoder_channels": f"{parts / 'enc'}: the encoder expects EEG of 8 channels",
                "missing_image": "img0.png"}[case]
    assert expected in err[0], err[0]


@pytest.mark.slow
def test_accelerate_launch_two_processes(parts, tmp_path):
    out = tmp_path / "ddp"
    launcher = Path(sys.executable).parent / "accelerate"
    if not launcher.exists():
        pytest.skip("the accelerate launcher is not installed beside this Python")
    port = free_port()
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
           "-m", "dreamdiffusion.cli", "finetune",
           "--dataset", "folder", "--root", str(parts / "data"), "--encoder", str(parts / "enc128"),
           "--base", str(parts / "base"), "--clip", str(parts / "clip"), "--output", str(out),
           "--batch-size", "1", "--max-steps", "2", "--checkpoint-every", "2", "--validation-images", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           RECORD_PAIRS_ENV: "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "finetune_config.json").read_text())
    assert config["resolved"]["num_processes"] == 2
    seen = [json.loads((out / "seen_pairs" / f"rank-{r}.json").read_text())["steps"] for r in (0, 1)]
    assert seen[0].keys() == seen[1].keys() == {"0", "1"}
    for step in seen[0]:
        assert len(seen[0][step]) == len(seen[1][step]) == 1 and seen[0][step] != seen[1][step]  # different pairs
    rows = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss"] == r["loss"] for r in rows)
    assert (out / "pipeline" / "model_index.json").is_file()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(parts, tmp_path):
    """Kill a CLI run with SIGKILL after its second checkpoint; --resume ends with the uninterrupted run's weights."""
    import signal
    import time

    def args(out):
        return ["finetune", "--dataset", "folder", "--root", str(parts / "data"), "--encoder", str(parts / "enc128"),
                "--base", str(parts / "base"), "--clip", str(parts / "clip"), "--output", str(out), "--batch-size", "2",
                "--max-steps", "5", "--checkpoint-every", "1", "--validate-every", "0", "--validation-images", "0",
                "--select", "last", "--seed", "11"]

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "dreamdiffusion.cli", *args(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from dreamdiffusion.training.checkpoint import CheckpointManager

    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            latest = CheckpointManager(killed).latest()
            if latest is not None and int(latest.name.split("-")[1]) >= 2:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "pipeline").exists()
    from accelerate.state import AcceleratorState, GradientState

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the killed process: bit-exact needs the same reduction order
    try:
        assert main(args(killed) + ["--resume"]) == 0
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
        whole = tmp_path / "whole"
        assert main(args(whole)) == 0
    finally:
        torch.set_num_threads(threads)
    for sub in ("unet", "eeg_conditioner"):
        a, b = _weights(whole / "pipeline" / sub), _weights(killed / "pipeline" / sub)
        assert all(torch.equal(a[k], b[k]) for k in a), sub
    steps = [json.loads(s)["step"] for s in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_select_metric_gen_clip_keeps_the_best_generated_step(parts, tmp_path):
    """--select-metric gen_clip: each validation generates val images and scores them in CLIP space; the final
    pipeline holds the weights of the step with the highest 2-way score (not the lowest val loss)."""
    cfg = _cfg(parts, tmp_path / "o", max_steps=4, validate_every=1, learning_rate=3e-3, select_metric="gen_clip",
               select_images=3, validation_inference_steps=2, guidance_scale=2.0)
    final = finetune(cfg, PairList(6), PairList(3, seed=1))
    rows = [json.loads(s) for s in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    scores = [r["val_gen_clip_2way"] for r in rows]
    assert len(scores) == 4 and all(0.0 <= v <= 1.0 for v in scores)
    assert all(-1.0 <= r["val_gen_clip_cos"] <= 1.0 for r in rows)
    best = json.loads((tmp_path / "o" / "final.json").read_text())["best"]
    assert best["metric"] == "val_gen_clip_2way"
    first_max = scores.index(max(scores))
    assert best["step"] == rows[first_max]["step"] and best["value"] == scores[first_max]
    chosen = load_file(str(tmp_path / "o" / "best_trainable.safetensors"))
    saved = _weights(Path(final) / "eeg_conditioner")
    key = next(k for k in chosen if k.startswith("conditioner.dim_mapper"))
    assert torch.equal(chosen[key], saved[key.removeprefix("conditioner.")])


def test_select_metric_is_checked():
    with pytest.raises(ConfigError, match="select-metric"):
        FinetuneConfig(select_metric="psnr").validate()


def test_timestep_bias_draws_the_biased_portion_more_often():
    from dreamdiffusion.training.finetune import sample_timesteps, timestep_weights

    w = timestep_weights(1000, "later", 3.0, 0.25)
    assert w[:750].eq(1).all() and w[750:].eq(3).all()
    gen = torch.Generator().manual_seed(0)
    uniform = sample_timesteps(20000, 1000, gen)
    later = sample_timesteps(20000, 1000, gen, "later", 3.0, 0.25)
    earlier = sample_timesteps(20000, 1000, gen, "earlier", 3.0, 0.25)
    assert uniform.min() >= 0 and uniform.max() <= 999
    # expected share of the last quarter: uniform 0.25, later 0.75 / (0.75 + 0.75) = 0.5
    assert abs(float((uniform >= 750).float().mean()) - 0.25) < 0.02
    assert abs(float((later >= 750).float().mean()) - 0.5) < 0.02
    assert abs(float((earlier < 250).float().mean()) - 0.5) < 0.02
    with pytest.raises(ConfigError, match="timestep-bias"):
        FinetuneConfig(timestep_bias="middle").validate()


def test_align_contrastive_trains_a_temperature_in_warmup_and_joint_phase(parts, tmp_path):
    cfg = _cfg(parts, tmp_path / "o", train="encoder", align="contrastive", clip_warmup_steps=3, max_steps=3,
               learning_rate=1e-2, cond_dropout=0.0)
    trainer = Trainer(cfg, PairList(4), PairList(2))
    trainer.setup()
    warm = json.loads((tmp_path / "o" / "clip_warmup.json").read_text())["best"]
    start = float(trainer.acc.unwrap_model(trainer.system).logit_scale.detach())
    assert warm["logit_scale"] == pytest.approx(start)  # the joint phase starts at the warm-up's temperature
    assert abs(start - 2.6593) > 1e-4  # and the warm-up trained it (from CLIP's 1/0.07)
    trainer.run()
    assert float(trainer.acc.unwrap_model(trainer.system).logit_scale.detach()) != pytest.approx(start)
    rows = [json.loads(s) for s in (tmp_path / "o" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < r["clip_loss"] < 5 for r in rows)  # InfoNCE over 2 images, not 1 - cos
    assert "val_clip_cos" in rows[-1] and -1 <= rows[-1]["val_clip_cos"] <= 1
    with pytest.raises(ConfigError, match="--align"):
        _cfg(parts, tmp_path / "p", align="mse").validate()


def test_align_cosine_weight_adds_the_cosine_term_to_infonce(parts, tmp_path):
    from dreamdiffusion.training.contrastive import info_nce
    from dreamdiffusion.training.stageb import alignment_loss, cosine_loss

    gen = torch.Generator().manual_seed(0)
    pred, target, ids = torch.randn(6, 8, generator=gen), torch.randn(6, 8, generator=gen), torch.tensor([0, 0, 1, 2, 3, 4])
    scale = torch.tensor(2.0)
    plain = alignment_loss("contrastive", pred, target, scale, ids)
    assert plain == pytest.approx(float(info_nce(pred, target, scale.exp(), ids)))
    both = alignment_loss("contrastive", pred, target, scale, ids, cosine_weight=0.5)
    assert both == pytest.approx(float(plain + 0.5 * cosine_loss(pred, target)))
    assert alignment_loss("cosine", pred, target) == pytest.approx(float(cosine_loss(pred, target)))
    for bad in (dict(align="cosine", align_cosine_weight=1.0), dict(align="contrastive", align_cosine_weight=-1.0)):
        with pytest.raises(ConfigError, match="--align-cosine-weight"):
            _cfg(parts, tmp_path / "p", **bad).validate()


def test_tokenizer_init_ridge_restarts_only_the_patch_embedding(parts, tmp_path):
    """--tokenizer-init ridge replaces Stage A's patch embedding before the warm-up (recorded in tokenizer_init.json)
    and leaves the rest of the encoder as Stage A left it; the default keeps the tokenizer."""
    from dreamdiffusion.models.conditioner import load_encoder

    before = load_encoder(parts / "enc").state_dict()
    ridge = Trainer(_cfg(parts, tmp_path / "r", tokenizer_init="ridge"), PairList(8), PairList(2))
    ridge.setup()
    record = json.loads((tmp_path / "r" / "tokenizer_init.json").read_text())
    assert record["n_train"] == 8 and record["filters"] >= 1 and record["alpha"] > 0
    after = ridge.parts.conditioner.encoder.state_dict()
    assert not torch.equal(after["patch_embed.weight"], before["patch_embed.weight"])
    assert torch.all(after["patch_embed.bias"] == 0)
    assert all(torch.equal(after[k], before[k]) for k in before if not k.startswith("patch_embed."))
    kept = Trainer(_cfg(parts, tmp_path / "k"), PairList(8), PairList(2))
    kept.setup()
    assert not (tmp_path / "k" / "tokenizer_init.json").exists()
    assert torch.equal(kept.parts.conditioner.encoder.state_dict()["patch_embed.weight"], before["patch_embed.weight"])


def test_encoder_norm_layernorm_gives_a_norm_free_stage_a_encoder_a_fresh_norm(parts, tmp_path):
    """--encoder-norm layernorm: Stage B's encoder gets a LayerNorm (identity at the start) where Stage A trained
    without one; the default keeps the encoder as pretrained; a bad value is a ConfigError naming the flag."""
    from dreamdiffusion.models.conditioner import load_encoder

    enc = load_encoder(parts / "enc")
    free = EEGEncoder.from_config({**{k: v for k, v in enc.config.items() if not k.startswith("_")}, "final_norm": False})
    free.load_state_dict({k: v for k, v in enc.state_dict().items() if not k.startswith("norm.")})
    free.save_pretrained(tmp_path / "free")
    normed = Trainer(_cfg(parts, tmp_path / "n", encoder=str(tmp_path / "free"), encoder_norm="layernorm"),
                     PairList(8), PairList(2))
    normed.setup()
    norm = normed.parts.conditioner.encoder.norm
    assert isinstance(norm, torch.nn.LayerNorm) and torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
    kept = Trainer(_cfg(parts, tmp_path / "k", encoder=str(tmp_path / "free")), PairList(8), PairList(2))
    kept.setup()
    assert isinstance(kept.parts.conditioner.encoder.norm, torch.nn.Identity)
    # affine: a per-feature affine map, set after the tokenizer's start from the train EEG's tokens, and recorded
    affine = Trainer(_cfg(parts, tmp_path / "a", encoder=str(tmp_path / "free"), encoder_norm="affine"),
                     PairList(8), PairList(2))
    affine.setup()
    norm = affine.parts.conditioner.encoder.norm
    record = json.loads((tmp_path / "a" / "encoder_norm.json").read_text())
    assert type(norm).__name__ == "TokenAffine" and record["n_windows"] == 8
    assert torch.allclose(norm.weight, torch.full_like(norm.weight, record["scale"]))
    assert record["scale"] == pytest.approx(1.0 / record["spread"])
    with pytest.raises(ConfigError, match="--encoder-norm"):
        _cfg(parts, tmp_path / "b", encoder_norm="batchnorm").validate()
