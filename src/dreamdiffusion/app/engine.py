"""EEG window -> images: the one generation backend shared by the web app and the live stream.

Both front ends hold an :class:`Engine`: it knows the model's input (channels, samples,
sampling rate), turns any recording or stream chunk into that input (MNE resampling and
filtering, channel mapping by repetition or by electrode position) and calls the pipeline.
Images and manifests are written atomically (temporary name, then ``os.replace``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import mne
import numpy as np
import torch

from dreamdiffusion.conditioning import build_pipeline, conditioning_record, plan_conditioning
from dreamdiffusion.core.errors import ConfigError, DreamDiffusionError, check_eeg_shape
from dreamdiffusion.core.files import atomic_write_png
from dreamdiffusion.core.generation_file import check_low_level_strength
from dreamdiffusion.data.transforms import (
    CHANNEL_MAPPINGS,
    MappedRecording,
    default_target_channels,
    window_at,
)
from dreamdiffusion.generation import draw_images, resolve_generation_settings, steering
from dreamdiffusion.pipeline import default_pipeline_folder

logger = logging.getLogger(__name__)

MAPPINGS = tuple(sorted(CHANNEL_MAPPINGS))  # ("montage", "repeat"): the app's choices, the default first


def default_model_dir() -> Path:
    """The embedded default trained pipeline, or a ConfigError that says how to get one."""
    return default_pipeline_folder()


class Engine:
    """A pipeline plus the ``InputSpec`` that says how raw EEG becomes its input.

    ``pipe`` is called as ``pipe(eeg [B, C, T] tensor, num_images_per_eeg=..,
    num_inference_steps=.., guidance_scale=.., generator=.., output_type="pil",
    callback_on_step_end=..)`` and returns an object with ``.images`` (a DreamDiffusionPipeline).
    """

    def __init__(self, pipe: Any, spec: Any, name: str = "model"):
        self.pipe = pipe
        self.spec = spec
        self.name = name

    @property
    def generation_defaults(self) -> dict:
        """The model's recommended settings (its ``generation.json``; ``{}`` when it has none)."""
        return dict(getattr(self.pipe, "generation_defaults", None) or {})

    def settings(self, steps: int | None = None, guidance: float | None = None,
                 low_level_strength: float | None = None) -> dict:
        """Steps and guidance to use (given values win, then the model's ``generation.json``, then 25 and 1),
        and the low-level strength where it applies, with ``settings_source``: see
        :func:`dreamdiffusion.generation.resolve_generation_settings`."""
        if low_level_strength is not None:
            check_low_level_strength(low_level_strength)  # the app's and the stream's one check of a given value
        if not self.guesses_latents:
            low_level_strength = None  # nothing to start from: the pipeline ignores it, and so do the records
        return resolve_generation_settings(self.pipe, steps, guidance, None, low_level_strength)

    @property
    def guesses_latents(self) -> bool:
        """Whether the EEG model guesses the image's latents (the modern recipe's low-level route), so that a
        ``low_level_strength`` below 1 starts the sampler from that guess."""
        conditioner = getattr(self.pipe, "eeg_conditioner", None)
        return getattr(conditioner, "latent_decoder", None) is not None

    @property
    def default_steps(self) -> int:
        """Denoising steps when the user does not choose: the model's recommendation, else 25."""
        return int(self.settings()["steps"])

    @property
    def default_guidance(self) -> float:
        """Guidance scale when the user does not choose: the model's recommendation, else 1."""
        return float(self.settings()["guidance"])

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike | None = None, conditioning: str = "auto",
                        base: str | None = None, ip_adapter: str | None = None) -> "Engine":
        """Load a pipeline folder (``None``: the embedded default) or an aligned encoder, drawing with the route
        ``conditioning`` chooses (:func:`dreamdiffusion.conditioning.plan_conditioning`: ``auto`` is the saved one)."""
        plan = plan_conditioning(model_dir if model_dir is not None else default_model_dir(), conditioning, base,
                                 ip_adapter)
        pipe = build_pipeline(plan)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, pipe.input_spec(), name=plan.folder.resolve().name)

    @property
    def conditioning(self) -> dict:
        """How the pipeline is conditioned (route, and how a pipeline built on the fly was built), for records."""
        return conditioning_record(self.pipe)

    @property
    def window_s(self) -> float:
        return float(self.spec.window_s)

    @property
    def n_chans(self) -> int:
        return int(self.spec.n_chans)

    def target_channels(self) -> list[str]:
        return list(self.spec.target_channels or default_target_channels(self.spec.n_chans, self.spec.montage))

    def mapped(self, raw: mne.io.BaseRaw, mapping: str | None = None,
               source: str | os.PathLike | None = None) -> MappedRecording:
        """``raw`` mapped onto the model's channels once (:class:`dreamdiffusion.data.transforms.MappedRecording`,
        the path ``generate --eeg-file`` takes too): its ``window(onset_s)`` and, for the manifest, ``channels()``.

        ``mapping`` overrides the spec's channel mapping (``montage``: spherical-spline
        interpolation from electrode positions, after channels with foreign names but known
        positions are snapped to 10-05 names; ``repeat``: tile the recorded channels).
        """
        return MappedRecording(raw, self.spec, mapping, source)

    def window(self, raw: mne.io.BaseRaw, onset_s: float, mapping: str | None = None,
               source: str | os.PathLike | None = None) -> np.ndarray:
        """The model's input ``float32 [n_chans, n_times]`` for the one window of ``raw`` at ``onset_s``
        (:meth:`mapped`)."""
        return self.mapped(raw, mapping, source).window(onset_s)

    def accepts_standardized(self, raw: mne.io.BaseRaw) -> bool:
        """True when ``raw`` already has the model's channel count and sampling rate."""
        return len(raw.ch_names) == self.n_chans and abs(raw.info["sfreq"] - self.spec.sfreq) < 1e-6 * self.spec.sfreq

    def window_standardized(self, raw: mne.io.BaseRaw, onset_s: float,
                            source: str | os.PathLike | None = None) -> np.ndarray:
        """Cut and normalise a recording that already is the model's input (no filter, no mapping)."""
        try:
            return window_at(raw.get_data() * 1e6, float(onset_s), self.spec)
        except DreamDiffusionError as exc:
            raise type(exc)(exc.message, source) from exc

    def generate(self, window: np.ndarray, *, steps: int | None = None, guidance: float | None = None, seed: int = 0,
                 num_images: int = 1, on_step: Callable[[int, int], None] | None = None,
                 low_level_strength: float | None = None) -> list:
        """Images (PIL) for one model input window ``[n_chans, n_times]``.

        ``steps``/``guidance`` left as None take :attr:`default_steps`/:attr:`default_guidance`;
        ``low_level_strength`` None takes the model's own (only where :attr:`guesses_latents`).
        """
        used = self.settings(steps, guidance, low_level_strength)
        steps, guidance = used["steps"], used["guidance"]

        check_eeg_shape((1, *window.shape), int(self.spec.n_chans), int(self.spec.n_times), self.spec.sfreq)
        if int(steps) < 1 or int(num_images) < 1:
            raise ConfigError("steps and the number of images must be at least 1")
        eeg = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))

        def _callback(pipe, step, timestep, kwargs):
            if on_step is not None:
                on_step(step + 1, int(steps))
            return kwargs

        # The one sampler: image j of this window is what `generate --seed SEED` draws for EEG 0 (with the CLIP
        # guidance the model's generation.json recommends, as generate applies it).
        return draw_images(self.pipe, [eeg], int(num_images), int(steps), float(guidance), int(seed),
                           callback_on_step_end=_callback, guidance_clip=self._clip_guidance(used),
                           low_level_strength=used.get("low_level_strength"))[0]

    def _clip_guidance(self, used: dict):
        """The recommended CLIP guidance (``generation.json``: ``clip_guidance`` and ``steering_clip``), loaded once."""
        scale = float(used.get("clip_guidance") or 0.0)
        moves = int(used.get("clip_guidance_steps") or 1)
        if scale <= 0:
            return None
        cached = getattr(self, "_guide", None)
        if cached is None or cached.scale != scale or cached.steps != moves:
            self._guide = steering(1, scale, self.generation_defaults.get("steering_clip"),
                                   clip_guidance_steps=moves)[1]
        return self._guide


# -- writing outputs -------------------------------------------------------------------------------
def save_image(image, path: str | os.PathLike) -> Path:
    """Save a PIL image as PNG atomically."""
    return atomic_write_png(path, image)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line; the line is written with a single write call so readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@dataclass
class GenerationRecord:
    """One generation: where the EEG came from, the settings, and the images written."""

    source: str
    onset_s: float
    mapping: str
    steps: int
    guidance: float
    seed: int
    images: list[str] = field(default_factory=list)
    model: str = ""
    created: float = field(default_factory=time.time)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out
