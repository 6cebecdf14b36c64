"""What Stage A reports beside its loss: val reconstruction against the reference predictors, the linear probe of
the encoder, and the figures (``loss.png``, ``reconstruction.png``). :mod:`~dreamdiffusion.training.pretrain`
calls them; they read the model and the data, never the run's state.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from dreamdiffusion.data.pairs import open_paired_dataset
from dreamdiffusion.evaluation.probe import linear_probe
from dreamdiffusion.evaluation.reconstruction import ReconstructionScores, interpolation_prediction
from dreamdiffusion.training.loop import STREAM_VAL, seeded_generator
from dreamdiffusion.training.plots import plot_loss_curves, plot_reconstruction

logger = logging.getLogger(__name__)


def reconstruct_signal(model, eeg: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Predicted tokens ``[B, N, p*C]`` -> signal ``[B, C, T]`` in the input's units (see ``model.reconstruct``)."""
    return model.reconstruct(eeg, pred)


@torch.no_grad()
def evaluate_msm(model, dataset, batch_size: int, seed: int, device, max_batches: int | None = None,
                 autocast=None) -> dict:
    """Validation on fixed masks (the same every call): the model's loss, and its masked MSE and Pearson r
    (all channels, input units) beside the zero and interpolation predictors on the same masks."""
    if len(dataset) == 0:
        return {}
    was_training = model.training
    model.eval()
    gen = seeded_generator(seed, STREAM_VAL, device=device)  # the same masks every evaluation
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    total_loss, total_n, scores = 0.0, 0, ReconstructionScores()
    for i, eeg in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        eeg = eeg.to(device)
        ctx = autocast() if autocast else torch.autocast("cpu", enabled=False)
        with ctx:
            loss, pred, mask = model(eeg, generator=gen)
        total_loss += float(loss) * len(eeg)
        total_n += len(eeg)
        scores.add(eeg.float(), reconstruct_signal(model, eeg, pred), model.sample_mask(mask))
    model.train(was_training)
    return {"val_loss": total_loss / max(total_n, 1), **scores.result("val_"), "val_windows": total_n}


def probe_encoder(encoder, dataset: str, options: dict, n_bins: int, seed: int, reference=None) -> dict:
    """Linear probe of the trained encoder (beside an untrained one, ``reference`` or a fresh draw, and the raw EEG)
    on paired dataset ``dataset``'s val (``{}`` when ``dataset`` is empty), with ``probe_s``, the seconds it took."""
    if not dataset:
        return {}
    started = time.time()
    train, val = (open_paired_dataset(dataset, split, **options) for split in ("train", "val"))
    result = linear_probe(encoder, train, val, n_bins=n_bins, seed=seed, reference=reference)
    logger.info("linear probe on %s val: encoder %.3f, random encoder %.3f, raw EEG %.3f (%.0f s)", dataset,
                result["probe_encoder"], result["probe_random_encoder"], result["probe_raw_eeg"],
                time.time() - started)
    return {**result, "probe_s": round(time.time() - started, 1)}


def pretrain_figures(msm, dataset, output: Path, records: list[dict], device, seed: int, mask_ratio: float) -> None:
    """``loss.png`` from the metrics ``records``, and ``reconstruction.png``: window 0 of ``dataset``, its fixed val
    mask, the model's reconstruction beside interpolation, with the last val scores in the title."""
    plot_loss_curves(records, output / "loss.png")
    eeg = dataset[0][None].to(device)
    msm.eval()
    with torch.no_grad():
        _loss, pred, mask = msm(eeg, generator=seeded_generator(seed, STREAM_VAL, device=device))
    recon = reconstruct_signal(msm, eeg, pred)[0].cpu().numpy()
    sample_mask = msm.sample_mask(mask)
    interp = interpolation_prediction(eeg.float(), sample_mask)[0].cpu().numpy()
    val = next((r for r in reversed(records) if r.get("val_mse_interp") is not None), {})
    scores = (f"\nval: model r {val['val_pearson_r']:.3f}, MSE {val['val_mse']:.3f} | interpolation r "
              f"{val['val_pearson_r_interp']:.3f}, MSE {val['val_mse_interp']:.3f} | zero MSE {val['val_mse_zero']:.3f}"
              if val else "")
    plot_reconstruction(eeg[0].cpu().numpy(), recon, sample_mask[0].cpu().numpy().astype(bool),
                        output / "reconstruction.png", sfreq=msm.config.sfreq, interpolation=interp,
                        title=f"MSM reconstruction, validation window 0 (mask ratio {mask_ratio:.2f}){scores}")


__all__ = ["evaluate_msm", "reconstruct_signal", "probe_encoder", "pretrain_figures"]
