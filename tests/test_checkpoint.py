"""CheckpointManager and the atomic writers: what is saved comes back; nothing half-written is ever used."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from accelerate import Accelerator

from dreamdiffusion.core.errors import CheckpointError
from dreamdiffusion.models.eeg_encoder import EEGEncoder
from dreamdiffusion.training.checkpoint import (
    STATE_FILE,
    CheckpointManager,
    atomic_save_pretrained,
    atomic_write_json,
    read_trainer_state,
)


def _setup():
    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, opt = accelerator.prepare(model, opt)
    return accelerator, model, opt


def _train_step(model, opt):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()


def test_save_then_load_restores_model_optimizer_and_state(tmp_path):
    accelerator, model, opt = _setup()
    _train_step(model, opt)
    manager = CheckpointManager(tmp_path)
    path = manager.save(accelerator, 7, {"best_val": 0.5}, epoch=2)
    assert path == tmp_path / "checkpoints" / "checkpoint-7"
    assert (path / "model.safetensors").is_file()
    state = json.loads((path / STATE_FILE).read_text())
    assert state["step"] == 7 and state["epoch"] == 2 and state["complete"] is True
    assert state["extra"] == {"best_val": 0.5}
    saved_w = model.weight.detach().clone()
    saved_exp_avg = opt.state_dict()["state"][0]["exp_avg"].clone()

    _train_step(model, opt)
    assert not torch.equal(model.weight, saved_w)
    loaded = manager.load(accelerator, manager.latest())
    assert loaded["extra"]["best_val"] == 0.5
    assert torch.equal(model.weight, saved_w)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], saved_exp_avg)


def test_half_written_checkpoints_are_never_latest(tmp_path):
    accelerator, model, opt = _setup()
    manager = CheckpointManager(tmp_path)
    good = manager.save(accelerator, 20, {})
    root = tmp_path / "checkpoints"
    # A save killed before the rename: temp name, even with a complete state file inside.
    tmp = root / "checkpoint-90.tmp-deadbeef"
    tmp.mkdir()
    (tmp / STATE_FILE).write_text(json.dumps({"step": 90, "complete": True}))
    # A final name without the marker, with the marker false, and with garbage JSON.
    for step, content in [(60, None), (70, json.dumps({"step": 70, "complete": False})), (80, "{not json")]:
        d = root / f"checkpoint-{step}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"partial")
        if content is not None:
            (d / STATE_FILE).write_text(content)
    assert manager.latest() == good
    assert [s for s, _ in manager.complete_checkpoints()] == [20]
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        manager.load(accelerator, root / "checkpoint-60")
    # The next save cleans the stale temp folder but leaves final-named folders for a human to judge.
    manager.save(accelerator, 30, {})
    assert not tmp.exists()
    assert manager.latest() == root / "checkpoint-30"


def test_rotation_keeps_newest_total_limit(tmp_path):
    accelerator, model, opt = _setup()
    manager = CheckpointManager(tmp_path, total_limit=2)
    for step in (1, 2, 3, 4):
        _train_step(model, opt)
        manager.save(accelerator, step, {})
    assert [s for s, _ in manager.complete_checkpoints()] == [3, 4]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-3", "checkpoint-4"]
    with pytest.raises(CheckpointError):
        CheckpointManager(tmp_path, total_limit=0)


def test_saving_same_step_twice_replaces_it(tmp_path):
    accelerator, model, opt = _setup()
    manager = CheckpointManager(tmp_path)
    manager.save(accelerator, 5, {"v": 1})
    manager.save(accelerator, 5, {"v": 2})
    assert read_trainer_state(manager.latest())["extra"] == {"v": 2}
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-5"]


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch " + os.environ["BOOM_MARKER"],))


def test_pickle_that_runs_code_is_refused(tmp_path, monkeypatch):
    accelerator, model, opt = _setup()
    manager = CheckpointManager(tmp_path)
    path = manager.save(accelerator, 3, {})
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("BOOM_MARKER", str(marker))
    with open(path / "optimizer.bin", "wb") as fh:
        pickle.dump({"state": _Boom()}, fh, protocol=2)
    with pytest.raises(CheckpointError) as info:
        manager.load(accelerator, path)
    assert str(path) in str(info.value)
    assert "Unsupported global" in str(info.value) or "weights_only" in str(info.value)
    assert not marker.exists()


def test_atomic_write_json_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"x": object()})
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_save_pretrained_new_and_existing_folder(tmp_path):
    enc = EEGEncoder(n_chans=4, n_times=32, sfreq=128.0, embed_dim=16, depth=1, num_heads=2)
    out = tmp_path / "new"
    atomic_save_pretrained(enc, out)
    assert (out / "config.json").is_file()
    again = EEGEncoder.from_pretrained(out)
    for (k, a), (_, b) in zip(enc.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k

    existing = tmp_path / "run"
    (existing / "checkpoints").mkdir(parents=True)
    (existing / "metrics.jsonl").write_text("{}\n")
    atomic_save_pretrained(enc, existing)
    assert (existing / "metrics.jsonl").read_text() == "{}\n"
    assert (existing / "checkpoints").is_dir()
    assert EEGEncoder.from_pretrained(existing).config.embed_dim == 16
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
