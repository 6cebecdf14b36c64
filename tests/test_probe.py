"""Linear probe of encoder features: binning, the ridge probe on known answers, and the three-way report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamdiffusion.evaluation.probe import binned_means, linear_probe, raw_eeg_features, ridge_accuracy
from dreamdiffusion.models.eeg_encoder import EEGEncoder


def test_binned_means_average_equal_time_bins():
    x = torch.arange(8.0).view(1, 8, 1).repeat(2, 1, 3)  # [B, L=8, F=3]
    out = binned_means(x, 4)
    assert out.shape == (2, 12) and out[0].tolist() == [0.5] * 3 + [2.5] * 3 + [4.5] * 3 + [6.5] * 3
    eeg = torch.stack([torch.zeros(16), torch.ones(16)])[None]  # [1, C=2, T=16]
    assert raw_eeg_features(eeg, 2).tolist() == [[0.0, 1.0, 0.0, 1.0]]


def test_ridge_probe_reads_a_linear_code_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    code = np.eye(3)[y] @ rng.standard_normal((3, 20))
    x = code + 0.3 * rng.standard_normal((300, 20))
    assert ridge_accuracy(x[:200], y[:200], x[200:], y[200:]) > 0.95
    noise = rng.standard_normal((300, 20))
    assert ridge_accuracy(noise[:200], y[:200], noise[200:], y[200:]) < 0.55


def test_linear_probe_reports_encoder_random_encoder_and_raw_eeg():
    rng = np.random.default_rng(1)
    n, c, t = 240, 4, 32
    y = rng.integers(0, 2, n)
    eeg = rng.standard_normal((n, c, t)).astype(np.float32)
    eeg[:, 0, 8:16] += 1.5 * (2 * y[:, None] - 1)  # class in channel 0, samples 8-16: a linear ERP
    eeg = torch.from_numpy(eeg)
    torch.manual_seed(0)
    enc = EEGEncoder(n_chans=c, n_times=t, patch_size=4, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0)
    before = torch.random.get_rng_state()
    out = linear_probe(enc, (eeg[:160], y[:160]), (eeg[160:], y[160:]), n_bins=4, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random stream did not move
    assert out["probe_raw_eeg"] > 0.9 and 0.0 <= out["probe_encoder"] <= 1.0
    assert 0.3 < out["probe_chance"] < 0.7 and (out["probe_n_train"], out["probe_n_val"], out["probe_n_bins"]) == (160, 80, 4)
    again = linear_probe(enc, (eeg[:160], y[:160]), (eeg[160:], y[160:]), n_bins=4, seed=3)
    assert again == out  # seeded: the random encoder is the same every time
    assert set(out) >= {"probe_encoder", "probe_random_encoder", "probe_raw_eeg"}
    with pytest.raises(ValueError):
        from dreamdiffusion.evaluation.probe import eeg_and_labels

        eeg_and_labels([])
