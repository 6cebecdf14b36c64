"""Reference predictors of Stage A (zero, linear interpolation) and their scores, on signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamdiffusion.evaluation.reconstruction import (
    ReconstructionScores,
    interpolation_prediction,
    masked_mse,
    zero_prediction,
)


def _ramp_batch() -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(64, dtype=torch.float32)
    eeg = torch.stack([torch.stack([0.5 * t - 3, -2.0 * t + 7, torch.full_like(t, 4.0)])] * 2)  # [2, 3, 64]
    mask = torch.zeros(2, 64)
    mask[0, 5:20] = 1
    mask[0, 30:31] = 1
    mask[1, 1:63] = 1  # only the two end samples visible
    return eeg, mask


def test_interpolation_is_exact_on_a_linear_ramp_and_keeps_visible_samples():
    eeg, mask = _ramp_batch()
    pred = interpolation_prediction(eeg, mask)
    assert torch.allclose(pred, eeg, atol=1e-5)
    sse, n = masked_mse(eeg, pred, mask)
    assert n == 3 * (15 + 1 + 62) and sse < 1e-6
    # a curved signal is not reproduced inside the gap, and the visible samples stay untouched
    curved = eeg ** 2
    pred = interpolation_prediction(curved, mask)
    assert torch.equal(pred[mask[:, None].expand_as(curved) == 0], curved[mask[:, None].expand_as(curved) == 0])
    assert masked_mse(curved, pred, mask)[0] > 1.0


def test_interpolation_holds_the_edges_and_takes_per_channel_masks():
    x = torch.tensor([[[1.0, 2.0, 9.0, 9.0, 3.0, 9.0]]])  # [1, 1, 6]
    mask = torch.tensor([[1, 0, 1, 1, 0, 1]])
    assert interpolation_prediction(x, mask)[0, 0].tolist() == pytest.approx([2.0, 2.0, 2 + 1 / 3, 2 + 2 / 3, 3.0, 3.0])
    assert interpolation_prediction(x, torch.ones(1, 6)).abs().sum() == 0  # nothing visible: 0
    two = torch.stack([x[0, 0], 2 * x[0, 0]])[None]  # [1, 2, 6]
    per_channel = torch.tensor([[[0, 0, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]]])
    pred = interpolation_prediction(two, per_channel)
    assert pred[0, 0, 2] == pytest.approx(5.5) and pred[0, 1, :5].tolist() == [18.0] * 5
    with pytest.raises(ValueError, match="does not fit"):
        interpolation_prediction(x, torch.ones(1, 5))


def test_zero_predictor_mse_is_the_signal_power_of_the_masked_samples():
    rng = np.random.default_rng(0)
    eeg = torch.from_numpy(rng.normal(0.0, 3.0, (4, 8, 128)).astype(np.float32))
    mask = torch.from_numpy(rng.random((4, 128)) < 0.75).float()
    sse, n = masked_mse(eeg, zero_prediction(eeg, mask), mask)
    power = float((eeg ** 2 * mask[:, None]).sum() / (mask.sum() * 8))
    assert sse / n == pytest.approx(power, rel=1e-5) and power == pytest.approx(9.0, rel=0.05)


def test_scores_rank_a_perfect_model_above_interpolation_above_zero():
    t = torch.linspace(0, 1, 256)
    sig = torch.stack([torch.sin(2 * np.pi * f * t) for f in (1.0, 1.5, 2.0)])[None].repeat(2, 1, 1)  # [2, 3, 256]
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(2, 64, generator=gen) < 0.75).float().repeat_interleave(4, dim=1)  # 4-sample tokens
    scores = ReconstructionScores()
    scores.add(sig, sig.clone(), mask)
    out = scores.result("val_")
    assert out["val_mse"] == pytest.approx(0.0, abs=1e-10) and out["val_pearson_r"] == pytest.approx(1.0)
    assert 0 < out["val_mse_interp"] < 0.2 * out["val_mse_zero"] and out["val_pearson_r_interp"] > 0.9
    assert out["val_mse_zero"] == pytest.approx(0.5, rel=0.1) and out["val_pearson_r_zero"] == 0.0
    assert set(out) == {f"val_{m}{s}" for m in ("mse", "pearson_r") for s in ("", "_zero", "_interp")}
