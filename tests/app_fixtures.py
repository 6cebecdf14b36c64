"""Shared pieces of the app/stream/devices tests: the Emotiv channel names and a tiny real pipeline."""

from __future__ import annotations

from pathlib import Path

import mne

EMOTIV = ["AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4"]


def write_spkit_fif(raw: mne.io.BaseRaw, folder: Path, annotate: bool = True) -> Path:
    """The Emotiv recording (conftest's ``spkit_raw``) saved as FIF, with two stimulus annotations when
    ``annotate`` (it changes ``raw``: pass a copy)."""
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
