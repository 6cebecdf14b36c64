"""Linear probe of encoder features: the ridge probe on known answers, the three-way report, the random encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamdiffusion.evaluation.probe import linear_probe, probe_features, random_encoder_like, ridge_accuracy
from dreamdiffusion.models.eeg_encoder import EEGEncoder, MaskedSignalModel


def test_ridge_probe_reads_a_linear_code_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    code = np.eye(3)[y] @ rng.standard_normal((3, 20))
    x = code + 0.3 * rng.standard_normal((300, 20))
    assert ridge_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.95
    noise = rng.standard_normal((300, 20))
    assert ridge_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.55


def _items(eeg, y):
    """A paired dataset as a plain list of items, two trials per image."""
    return [{"eeg": e, "label": int(lab), "image_name": f"img-{i // 2}"} for i, (e, lab) in enumerate(zip(eeg, y))]


def test_linear_probe_reports_encoder_random_encoder_and_raw_eeg():
    rng = np.random.default_rng(1)
    n, c, t = 240, 4, 32
    y = np.repeat(rng.integers(0, 2, n // 2), 2)
    eeg = rng.standard_normal((n, c, t)).astype(np.float32)
    eeg[:, 0, 8:16] += 1.5 * (2 * y[:, None] - 1)  # class in channel 0, samples 8-16: a linear ERP
    train, val = _items(eeg[:160], y[:160]), _items(eeg[160:], y[160:])
    torch.manual_seed(0)
    enc = EEGEncoder(n_chans=c, n_times=t, patch_size=4, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0)
    before = torch.random.get_rng_state()
    out = linear_probe(enc, train, val, n_bins=4, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random stream did not move
    assert out["probe_raw_eeg"] > 0.9 and 0.0 <= out["probe_encoder"] <= 1.0
    assert 0.3 < out["probe_chance"] < 0.7 and (out["probe_n_train"], out["probe_n_val"], out["probe_n_bins"]) == (160, 80, 4)
    again = linear_probe(enc, train, val, n_bins=4, seed=3)
    assert again == out  # seeded: the random encoder is the same every time
    assert set(out) >= {"probe_encoder", "probe_random_encoder", "probe_raw_eeg"}
    feats, labels, images = probe_features(train, {"enc": enc}, n_bins=4, batch_size=7)
    assert feats["raw_eeg"].shape == (160, c * 4) and feats["enc"].shape == (160, 16 * 4)
    assert labels == list(y[:160]) and images[:3] == ["img-0", "img-0", "img-1"] and enc.training
    with pytest.raises(ValueError):
        linear_probe(enc, [], val)
    # a given untrained twin (pretrain's own start) is probed as the random encoder, instead of a fresh draw
    twin = EEGEncoder(n_chans=c, n_times=t, patch_size=4, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0)
    given = linear_probe(enc, train, val, n_bins=4, seed=3, reference=twin)
    alone = linear_probe(twin, train, val, n_bins=4, seed=3, baselines=False)
    assert given["probe_random_encoder"] == alone["probe_encoder"] and given["probe_encoder"] == out["probe_encoder"]
    # the raw EEG's probe reads no encoder: the twin's run gives the same number, and raw=False leaves it out (the
    # demo's probe after Stage B reuses Stage A's) while the random encoder is still probed
    assert given["probe_raw_eeg"] == out["probe_raw_eeg"]
    no_raw = linear_probe(enc, train, val, n_bins=4, seed=3, raw=False)
    assert "probe_raw_eeg" not in no_raw and no_raw == {k: v for k, v in out.items() if k != "probe_raw_eeg"}


def test_random_encoder_has_the_encoders_shape():
    """An encoder built inside the MSM model: its random twin is the tiny one, not diffusers' default (paper-size)."""
    enc = MaskedSignalModel.from_preset("tiny", alibi=True).encoder
    rand = random_encoder_like(enc, seed=0)
    assert {k: rand.config[k] for k in ("embed_dim", "depth", "num_heads", "alibi")} == \
           {"embed_dim": 64, "depth": 2, "num_heads": 4, "alibi": True}
    assert sum(p.numel() for p in rand.parameters()) == sum(p.numel() for p in enc.parameters())
