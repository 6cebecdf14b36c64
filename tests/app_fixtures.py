"""Shared pieces of the app/stream/devices tests: the real Emotiv recording and a tiny real pipeline."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import mne
import numpy as np
import pytest

EMOTIV = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4"]


def spkit_raw() -> mne.io.RawArray:
    """spkit's real 14-channel Emotiv EPOC recording (16 s at 128 Hz), read without importing spkit."""
    spec = importlib.util.find_spec("spkit")
    if spec is None or spec.origin is None:
        pytest.skip("spkit is not installed (pip install --no-deps spkit==0.0.9.7): no real EEG recording")
    path = Path(spec.origin).parent / "data" / "files" / "EEG16SecData.pkl"
    with open(path, "rb") as fh:
        # A package's own data file of numpy arrays; tests only (library code uses data.io.sample_raw).
        X, ch = pickle.load(fh)
    raw = mne.io.RawArray(np.asarray(X, dtype=float).T * 1e-6, mne.create_info(list(ch), 128.0, "eeg"),
                          verbose="error")
    raw.set_montage("standard_1020", verbose="error")
    return raw


def write_spkit_fif(folder: Path, annotate: bool = True) -> Path:
    """The Emotiv recording saved as FIF (with two stimulus annotations when ``annotate``)."""
    raw = spkit_raw()
    if annotate:
        raw.set_annotations(mne.Annotations(onset=[2.0, 7.5], duration=[0.0, 0.0], description=["cat", "dog"]))
    path = Path(folder) / "emotiv_raw.fif"
    raw.save(path, overwrite=True, verbose="error")
    return path


def tiny_pipeline(n_chans: int = 128, n_times: int = 512, sfreq: float = 512 / 0.44, seed: int = 0, **prep):
    """A real DreamDiffusionPipeline with tiny random components (builtin architectures)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from dreamdiffusion.models import builtin
    from dreamdiffusion.models.conditioner import EEGConditioner
    from dreamdiffusion.pipeline import DreamDiffusionPipeline

    torch.manual_seed(seed)
    cond = EEGConditioner(n_chans=n_chans, n_times=n_times, sfreq=sfreq, patch_size=16, embed_dim=32, depth=1,
                          num_heads=2, cross_attention_dim=builtin.CROSS_ATTENTION_DIM,
                          clip_dim=builtin.CLIP_PROJECTION_DIM, num_cond_tokens=8, mid_tokens=8,
                          time_embed_dim=None)
    unet = UNet2DConditionModel(**builtin.unet_config())
    vae = AutoencoderKL(**builtin.vae_config())
    sched = DDIMScheduler.from_config(builtin.scheduler_config())
    preprocessing = {"n_chans": n_chans, "n_times": n_times, "sfreq": sfreq, "l_freq": 1.0, "h_freq": 40.0,
                     "channel_mapping": "montage", **prep}
    return DreamDiffusionPipeline(unet=unet, vae=vae, scheduler=sched, eeg_conditioner=cond,
                                  preprocessing=preprocessing)


def tiny_pipeline_dir(folder: Path, **kw) -> Path:
    pipe = tiny_pipeline(**kw)
    out = Path(folder) / "pipeline"
    pipe.save_pretrained(out)
    return out
