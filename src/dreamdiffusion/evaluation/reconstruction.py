"""Reference predictors for masked signal modeling: what Stage A must beat to have learned anything.

A masked-reconstruction score means little alone. Two predictors that learn nothing, scored on the
*same* masks as the model:

- **zero**: predict 0 everywhere. On z-scored EEG its masked MSE is the signal power of the masked
  samples; a model at this level has learned the mean and nothing else.
- **interpolation**: per channel, a straight line between the nearest visible samples before and
  after each masked span (the nearest visible value where one side has none). Random masking of short
  tokens leaves gaps of a few milliseconds, which this predictor bridges well: a model that does not
  beat it has learned less than a ruler.

Pure tensors in, tensors out: no model, no files. Training imports this; it imports nothing of the project.
"""

from __future__ import annotations

import torch


def _broadcast_mask(eeg: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` or ``[B, C, T]`` (1 = masked) -> boolean ``[B, C, T]``."""
    mask = sample_mask.bool()
    if mask.ndim == 2:
        mask = mask[:, None, :]
    if mask.ndim != 3 or mask.shape[0] != eeg.shape[0] or mask.shape[-1] != eeg.shape[-1]:
        raise ValueError(f"mask {tuple(sample_mask.shape)} does not fit EEG {tuple(eeg.shape)}")
    return mask.expand_as(eeg)


def zero_prediction(eeg: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
    """The zero predictor: zeros where masked, the input where visible (``[B, C, T]``)."""
    mask = _broadcast_mask(eeg, sample_mask)
    return torch.where(mask, torch.zeros_like(eeg), eeg)


def interpolation_prediction(eeg: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
    """Linear interpolation across every masked span, per channel: ``[B, C, T]``.

    Between the last visible sample before a gap and the first one after it the prediction is the
    straight line through them; before the first (after the last) visible sample it holds that
    sample's value; a row with nothing visible is predicted as 0. Visible samples are returned as they are.
    """
    x = eeg.float()
    mask = _broadcast_mask(x, sample_mask)
    n = x.shape[-1]
    t = torch.arange(n, device=x.device).expand_as(x)
    # index of the previous / next visible sample at every position (-1 / n where there is none)
    prev = torch.where(mask, torch.full_like(t, -1), t).cummax(dim=-1).values
    nxt = torch.where(mask, torch.full_like(t, n), t).flip(-1).cummin(dim=-1).values.flip(-1)
    has_prev, has_next = prev >= 0, nxt < n
    left = torch.where(has_prev, prev, nxt).clamp(0, n - 1)  # a missing side borrows the other one
    right = torch.where(has_next, nxt, prev).clamp(0, n - 1)
    x_left, x_right = x.gather(-1, left), x.gather(-1, right)
    span = (right - left).clamp_min(1).float()
    w = ((t - left).float() / span).clamp(0.0, 1.0)
    w = torch.where(left == right, torch.zeros_like(w), w)
    pred = x_left + w * (x_right - x_left)
    pred = torch.where(has_prev | has_next, pred, torch.zeros_like(pred))
    return torch.where(mask, pred, x).to(eeg.dtype)


REFERENCE_PREDICTORS = {"zero": zero_prediction, "interp": interpolation_prediction}


def masked_mse(original: torch.Tensor, prediction: torch.Tensor, sample_mask: torch.Tensor) -> tuple[float, int]:
    """Sum of squared errors over masked samples and their count (so batches add up exactly)."""
    mask = _broadcast_mask(original, sample_mask)
    err = ((prediction.float() - original.float()) ** 2)[mask]
    return float(err.sum()), int(err.numel())


def masked_pearson_r(original: torch.Tensor, recon: torch.Tensor, sample_mask: torch.Tensor) -> torch.Tensor:
    """Pearson r per (window, channel) over the masked samples only: ``[B, C]`` (NaN where undefined).

    ``sample_mask`` ``[B, T]`` or ``[B, C, T]`` is 1 where the model had to reconstruct; visible
    samples are not trained, so scoring them would flatter every predictor. A constant prediction
    (the zero predictor) has no correlation: NaN here, counted as 0 by :class:`ReconstructionScores`.
    """
    w = _broadcast_mask(original, sample_mask).float()  # [B, C, T]
    n = w.sum(-1).clamp_min(1.0)
    x, y = original.float(), recon.float()
    mx, my = (x * w).sum(-1) / n, (y * w).sum(-1) / n
    dx, dy = (x - mx[..., None]) * w, (y - my[..., None]) * w
    cov = (dx * dy).sum(-1)
    denom = ((dx * dx).sum(-1) * (dy * dy).sum(-1)).sqrt()
    return torch.where(denom > 1e-12, cov / denom.clamp_min(1e-30), torch.full_like(cov, float("nan")))


class ReconstructionScores:
    """Accumulates masked MSE and Pearson r of the model and of each reference predictor over batches.

    Pearson r is the mean over (window, channel) pairs with a defined r for the model and the
    interpolation; a constant predictor's undefined r counts as 0 (it explains nothing).
    """

    def __init__(self):
        self._sse: dict[str, float] = {}
        self._n: dict[str, int] = {}
        self._r: dict[str, list[torch.Tensor]] = {}

    def add(self, eeg: torch.Tensor, recon: torch.Tensor, sample_mask: torch.Tensor) -> None:
        preds = {"model": recon, **{name: fn(eeg, sample_mask) for name, fn in REFERENCE_PREDICTORS.items()}}
        for name, pred in preds.items():
            sse, n = masked_mse(eeg, pred, sample_mask)
            self._sse[name] = self._sse.get(name, 0.0) + sse
            self._n[name] = self._n.get(name, 0) + n
            r = masked_pearson_r(eeg, pred, sample_mask).flatten()
            if name == "zero":
                r = torch.nan_to_num(r, nan=0.0)
            self._r.setdefault(name, []).append(r[torch.isfinite(r)])

    def result(self, prefix: str = "val_") -> dict:
        """``{prefix}mse``, ``{prefix}pearson_r`` (model) and ``..._zero``, ``..._interp`` for the references."""
        out: dict = {}
        for name in self._sse:
            suffix = "" if name == "model" else f"_{name}"
            r = torch.cat(self._r[name]) if self._r[name] else torch.zeros(0)
            out[f"{prefix}mse{suffix}"] = self._sse[name] / max(self._n[name], 1)
            out[f"{prefix}pearson_r{suffix}"] = float(r.mean()) if len(r) else float("nan")
        return out


__all__ = ["zero_prediction", "interpolation_prediction", "masked_mse", "masked_pearson_r", "ReconstructionScores",
           "REFERENCE_PREDICTORS"]
