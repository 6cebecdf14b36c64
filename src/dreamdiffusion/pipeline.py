"""``DreamDiffusionPipeline``: EEG -> images with a fine-tuned Stable Diffusion (diffusers).

Components: ``unet`` (UNet2DConditionModel, LoRA already fused), ``vae`` (AutoencoderKL),
``scheduler`` (any diffusers scheduler; default DPM-Solver++), ``eeg_conditioner``
(:class:`~dreamdiffusion.models.conditioner.EEGConditioner`). The folder written by
``save_pretrained`` holds only JSON and safetensors, plus ``preprocessing.json``: the input the
model expects (``n_chans``, ``n_times``, ``sfreq``, band, channel names/mapping) so that raw EEG
can be prepared the same way as in training.

Classifier-free guidance uses the conditioner's learned null-EEG context (trained by condition
dropout). ``guidance_scale=1`` reproduces the paper's sampling (no guidance); the paper used PLMS
(``PNDMScheduler(skip_prk_steps=True)``) with 250 steps.

Fast path (:meth:`DreamDiffusionPipeline.enable_fast_path`): channels-last UNet and VAE and, optionally,
``torch.compile`` of the UNet (``"reduce-overhead"`` = CUDA graphs on a GPU). Use it with a half-precision
``torch_dtype`` on a GPU; fused attention (SDPA) is diffusers' default already.

Two conditionings (``pipe.config.conditioning``, in ``model_index.json``):

- ``"tokens"`` (the paper's): the conditioner's EEG tokens are the UNet's cross-attention context;
- ``"ip-adapter"`` (the field's since 2024): the conditioner's predicted CLIP image embedding (``clip_embeds``,
  rescaled to ``image_embed_norm`` when set) goes to the UNet through IP-Adapter with diffusers' own machinery
  (``load_ip_adapter`` -> ``ImageProjection`` + ``IPAdapterAttnProcessor2_0``, ``set_ip_adapter_scale``,
  ``added_cond_kwargs={"image_embeds": ...}``); the text context is the base's empty prompt (the conditioner's
  ``null_cond``), and the guidance's negative image embedding is zeros, as diffusers' ``encode_image``. The
  adapter is saved beside the components as ``ip_adapter/ip-adapter.safetensors`` (the ``h94/IP-Adapter``
  format); ``ip_adapter_image_embeds`` draws from given CLIP embeddings instead of EEG.
  Build one with :meth:`DreamDiffusionPipeline.from_ip_adapter`.

Recommended generation settings: ``generation.json`` in the folder (written by
:func:`write_generation_defaults`, e.g. the guidance scale chosen on the val split) is read into
``pipe.generation_defaults`` (``{}`` when absent). The command line and the app use it when no
``--guidance``/``--steps`` is given; ``__call__`` itself never reads it (explicit arguments, same defaults).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    ImagePipelineOutput,
    PNDMScheduler,
)
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor
from transformers.utils import logging as hf_logging

from dreamdiffusion.core.config import check_model_folder, check_model_index, read_json_config
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.files import atomic_write_json
from dreamdiffusion.core.generation_file import (  # read/write: re-exported, callers import them from here
    GENERATION_FILE,
    check_class_context_scale,
    check_generation_defaults,
    check_low_level_strength,
    read_generation_defaults,
    write_generation_defaults,
)
from dreamdiffusion.data.transforms import InputSpec
from dreamdiffusion.models import hub
from dreamdiffusion.models.builtin import default_pipeline_path
from dreamdiffusion.models.conditioner import EEGConditioner  # noqa: F401  (diffusers loads eeg_conditioner/ from it)
from dreamdiffusion.models.ip_adapter import (
    IP_ADAPTER_SUBFOLDER,
    IP_ADAPTER_WEIGHT_NAME,
    ip_adapter_state_dict,
    resolve_ip_adapter,
    save_ip_adapter,
)

logger = logging.getLogger(__name__)

# diffusers' IP-Adapter loader imports transformers' CLIP image processor, which warns that torchvision (never
# installed beside this torch) is missing on every import; nothing here uses that processor.
_verbosity = hf_logging.get_verbosity()
hf_logging.set_verbosity_error()
try:
    from diffusers.loaders import IPAdapterMixin
finally:
    hf_logging.set_verbosity(_verbosity)

PREPROCESSING_FILE = "preprocessing.json"

# Name -> (class, extra config). "pndm" is the paper's PLMS sampler (use 250 steps for parity).
SCHEDULERS = {
    "dpm": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++"}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
}


CONDITIONINGS = ("tokens", "ip-adapter")  # EEG tokens in cross-attention | predicted CLIP embedding via IP-Adapter

# ``--compile`` choices: no compile, or a torch.compile mode for the UNet.
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


def make_scheduler(name: str, config: dict):
    """A scheduler of kind ``name`` (``dpm``, ``pndm``, ``ddim``, ``euler``) on the noise schedule ``config``."""
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    cls, extra = SCHEDULERS[name]
    return cls.from_config({**dict(config), **extra})


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def default_pipeline_folder() -> Path:
    """The trained pipeline shipped with this installation, or a ConfigError that says how to get one."""
    path = default_pipeline_path()
    if path is None or not Path(path).is_dir():
        raise ConfigError(
            "no trained pipeline is shipped with this installation: pass --model DIR (a pipeline folder), "
            "or create one with `dreamdiffusion demo --output runs/demo` and pass --model runs/demo")
    return Path(path)


def resolve_pipeline_folder(model=None) -> Path:
    """The pipeline folder ``model`` names: the folder itself, or the ``pipeline/`` of a finetune output
    folder (``finetune/pipeline`` of a demo run folder); ``None``: the shipped default pipeline.
    A ConfigError naming ``model`` otherwise."""
    if model is None:
        return default_pipeline_folder()
    path = Path(os.fspath(model)).expanduser()
    if not path.exists():
        raise ConfigError("pipeline folder not found (pass --model with the folder written by "
                          "`dreamdiffusion finetune` or `dreamdiffusion demo`)", path)
    if not path.is_dir():
        raise ConfigError("--model must be a pipeline folder, not a file", path)
    for sub in ("", "pipeline", "finetune/pipeline"):
        if (path / sub / "model_index.json").is_file():
            return path / sub if sub else path
    raise ConfigError("not a DreamDiffusion pipeline folder (no model_index.json); pass the `pipeline/` "
                      "folder written by `dreamdiffusion finetune`", path)


class DreamDiffusionPipeline(DiffusionPipeline, IPAdapterMixin):
    """Generate images from EEG windows ``[B, n_chans, n_times]`` (or one window ``[n_chans, n_times]``)."""

    model_cpu_offload_seq = "eeg_conditioner->unet->vae"

    def __init__(self, unet, vae, scheduler, eeg_conditioner, preprocessing: dict | None = None,
                 conditioning: str = "tokens", ip_adapter_scale: float = 1.0, image_embed_norm: float | None = None):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ConfigError(f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {conditioning!r}")
        self.register_modules(unet=unet, vae=vae, scheduler=scheduler, eeg_conditioner=eeg_conditioner)
        # ip-adapter only: the adapter's scale, and the norm predicted embeddings are rescaled to (None: as predicted)
        self.register_to_config(conditioning=conditioning, ip_adapter_scale=float(ip_adapter_scale),
                                image_embed_norm=None if image_embed_norm is None else float(image_embed_norm))
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self.preprocessing = dict(preprocessing or {})
        # Recommended settings from generation.json ({} when none); see write_generation_defaults.
        self.generation_defaults: dict = {}
        self.fast_path: dict | None = None  # set by enable_fast_path

    # --------------------------------------------------------------------------- save / load
    def save_pretrained(self, save_directory, **kwargs):
        kwargs.setdefault("safe_serialization", True)
        if self.config.conditioning == "ip-adapter":
            # The UNet is saved as the stock base UNet and the adapter beside it (diffusers' UNet config cannot
            # describe a loaded adapter), then the adapter goes back in.
            state = ip_adapter_state_dict(self.unet)
            self.unload_ip_adapter()
            try:
                super().save_pretrained(save_directory, **kwargs)
                Path(save_directory, IP_ADAPTER_SUBFOLDER).mkdir(exist_ok=True)
                save_ip_adapter(state, Path(save_directory, IP_ADAPTER_SUBFOLDER))
            finally:
                self._attach_ip_adapter(state)
        else:
            super().save_pretrained(save_directory, **kwargs)
        spec = {**self.default_preprocessing(), **self.preprocessing}
        atomic_write_json(Path(save_directory, PREPROCESSING_FILE), spec)
        if self.generation_defaults:
            atomic_write_json(Path(save_directory, GENERATION_FILE),
                               check_generation_defaults(dict(self.generation_defaults),
                                                          Path(save_directory, GENERATION_FILE)))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Load a pipeline folder (or a finetune output folder holding ``pipeline/``).

        Every config in the folder is checked first (:func:`~dreamdiffusion.core.config.check_model_folder`:
        bounds, known component classes, no custom code, no pickled weights); weights load from safetensors
        only and no code shipped with a model is ever run (``trust_remote_code=False``).
        """
        path = resolve_pipeline_folder(pretrained_model_name_or_path)
        check_model_folder(path)
        check_model_index(read_json_config(path / "model_index.json"), path / "model_index.json")
        kwargs.setdefault("use_safetensors", True)
        kwargs["trust_remote_code"] = False
        if "torch_dtype" in kwargs:  # diffusers renamed it; the old name warns on every load
            kwargs["dtype"] = kwargs.pop("torch_dtype")
        try:
            pipe = super().from_pretrained(os.fspath(path), **kwargs)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
            raise ConfigError(f"cannot load the pipeline: {_first_line(exc)}", path) from exc
        spec_file = path / PREPROCESSING_FILE
        if spec_file.is_file():
            pipe.preprocessing = read_json_config(spec_file)
        pipe.generation_defaults = read_generation_defaults(path)
        if pipe.config.conditioning == "ip-adapter":
            try:
                pipe._attach_ip_adapter(os.fspath(path), subfolder=IP_ADAPTER_SUBFOLDER, weight_name=IP_ADAPTER_WEIGHT_NAME)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ConfigError(f"cannot load its IP-Adapter ({IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT_NAME}): "
                                  f"{str(exc).strip().splitlines()[0]}", path) from exc
        return pipe

    def _attach_ip_adapter(self, weights, **kwargs) -> None:
        """diffusers' ``load_ip_adapter`` (a folder + subfolder/weight_name, or a state dict), then the scale."""
        kwargs.setdefault("subfolder", "")
        kwargs.setdefault("weight_name", "")
        self.load_ip_adapter(weights, image_encoder_folder=None, **kwargs)
        self.set_ip_adapter_scale(self.config.ip_adapter_scale)

    @classmethod
    def from_ip_adapter(cls, eeg_conditioner, base: str = "builtin-tiny", ip_adapter: str = "builtin-tiny",
                        ip_adapter_scale: float = 1.0, image_embed_norm: float | None = None,
                        scheduler: str = "dpm", preprocessing: dict | None = None) -> "DreamDiffusionPipeline":
        """An ``ip-adapter`` pipeline: the base's UNet and VAE, the adapter of ``ip_adapter``, and an EEG model.

        ``eeg_conditioner`` predicts the CLIP image embedding of the adapter's image encoder (its ``clip_embeds``);
        its ``null_cond`` is set to the base's empty prompt, the text context of every image.
        ``base``/``ip_adapter``: ``builtin-tiny``, hub ids (``runwayml/stable-diffusion-v1-5`` with
        ``h94/IP-Adapter``) or local folders laid out like them.
        """
        parts = hub.load_base(base)
        prompt = hub.empty_prompt_context(parts.path)
        if tuple(eeg_conditioner.null_cond.shape) != tuple(prompt.shape):
            raise ConfigError(f"the EEG model's context is {tuple(eeg_conditioner.null_cond.shape)}, the base's "
                              f"prompt {tuple(prompt.shape)}", base)
        with torch.no_grad():
            eeg_conditioner.null_cond.copy_(prompt.to(eeg_conditioner.null_cond.dtype))
        pipe = cls(parts.unet, parts.vae, make_scheduler(scheduler, parts.scheduler_config), eeg_conditioner,
                   preprocessing, conditioning="ip-adapter", ip_adapter_scale=ip_adapter_scale,
                   image_embed_norm=image_embed_norm)
        src = resolve_ip_adapter(ip_adapter)
        try:
            pipe._attach_ip_adapter(src.repo, subfolder=src.subfolder, weight_name=src.weight_name)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ConfigError(f"cannot load the IP-Adapter: {str(exc).strip().splitlines()[0]} "
                              "(offline? pass a local folder)", ip_adapter) from exc
        return pipe

    def default_preprocessing(self) -> dict:
        cfg = self.eeg_conditioner.config
        return {"n_chans": cfg.n_chans, "n_times": cfg.n_times, "sfreq": cfg.sfreq}

    def input_spec(self) -> InputSpec:
        """The :class:`~dreamdiffusion.data.transforms.InputSpec` that turns a raw recording into this model's input.

        ``preprocessing.json`` over the conditioner's own shape and rate; keys this version does not know
        (a newer writer's) are left out, the known ones are enough to prepare the input.
        """
        spec = {**self.default_preprocessing(), **self.preprocessing}
        known = {f.name for f in dataclasses.fields(InputSpec)}
        return InputSpec(**{k: v for k, v in spec.items() if k in known})

    def set_scheduler(self, name: str) -> None:
        """Swap the sampler (``dpm``, ``pndm``, ``ddim``, ``euler``), keeping the noise schedule."""
        self.scheduler = make_scheduler(name, self.scheduler.config)

    # ------------------------------------------------------------------------------ fast path
    def enable_fast_path(self, compile: bool | str | None = "default", channels_last: bool = True,
                         backend: str = "inductor", fullgraph: bool = False) -> "DreamDiffusionPipeline":
        """Make sampling faster: channels-last convolutions and an optionally compiled UNet.

        ``compile``: ``"none"`` (or ``False``/``None``), ``"default"`` (or ``True``), ``"reduce-overhead"``
        (CUDA graphs on a GPU: for small batches, where kernel launches dominate) or ``"max-autotune"``
        (longer compile, searched kernels). The UNet is compiled in place (``nn.Module.compile``, static
        shapes), so its weights, ``save_pretrained`` and the time-conditioning hook work as before. The first
        call of each new batch shape compiles (tens of seconds to minutes on a GPU); later calls are fast.
        ``backend`` other than ``"inductor"`` (``"eager"``, ``"aot_eager"``) is for diagnosis and tests.
        Returns the pipeline.
        """
        if compile is True:
            mode = "default"
        elif compile is False or compile is None:
            mode = "none"
        else:
            mode = compile
        if mode not in COMPILE_MODES:
            raise ConfigError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {compile!r}")
        if self.fast_path and self.fast_path["compile"] != "none" and mode != self.fast_path["compile"]:
            raise ConfigError(f"the UNet is already compiled with {self.fast_path['compile']!r}; "
                              "load the pipeline again to change the mode")
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        if mode != "none" and not (self.fast_path and self.fast_path["compile"] == mode):
            if backend == "inductor":
                self.unet.compile(mode=None if mode == "default" else mode, dynamic=False, fullgraph=fullgraph)
            else:  # modes are inductor's; other backends compile the same graph without them
                self.unet.compile(backend=backend, dynamic=False, fullgraph=fullgraph)
        self.fast_path = {"compile": mode, "channels_last": bool(channels_last), "backend": backend}
        return self

    # ------------------------------------------------------------------------------ inference
    def _prepare_eeg(self, eeg) -> torch.Tensor:
        if isinstance(eeg, np.ndarray):
            eeg = torch.from_numpy(np.ascontiguousarray(eeg))
        if not torch.is_tensor(eeg):
            raise ConfigError(f"EEG must be a tensor or numpy array, got {type(eeg).__name__}")
        if eeg.ndim == 2:
            eeg = eeg[None]
        if not torch.isfinite(eeg).all():
            raise ConfigError("EEG holds NaN or Inf samples")
        self.eeg_conditioner.check_eeg(eeg)
        return eeg.to(self.device, self.eeg_conditioner.dtype)

    @torch.no_grad()
    def encode_eeg(self, eeg) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cond [B, 77, Dx], clip_embeds [B, P])``: the cross-attention context and the CLIP-space embedding."""
        out = self.eeg_conditioner(self._prepare_eeg(eeg))
        return out.cond, out.clip_embeds

    @torch.no_grad()
    def predict_image_embeds(self, eeg) -> torch.Tensor:
        """The EEG's predicted CLIP image embedding ``[B, P]`` as the IP-Adapter gets it (rescaled to
        ``config.image_embed_norm`` when set: contrastive and cosine losses fix only the direction)."""
        embeds = self.eeg_conditioner(self._prepare_eeg(eeg)).clip_embeds
        norm = self.config.image_embed_norm
        return embeds if norm is None else torch.nn.functional.normalize(embeds, dim=-1) * norm

    def _given_image_embeds(self, embeds) -> torch.Tensor:
        """``ip_adapter_image_embeds`` as ``[B, P]``: a ``[B, P]`` tensor or diffusers' list of one ``[B, 1, P]``."""
        if isinstance(embeds, (list, tuple)):
            if len(embeds) != 1:
                raise ConfigError(f"one IP-Adapter is loaded: pass one image-embedding tensor, got {len(embeds)}")
            embeds = embeds[0]
        if embeds.ndim == 3 and embeds.shape[1] == 1:
            embeds = embeds[:, 0]
        dim = self.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.in_features
        if embeds.ndim != 2 or embeds.shape[1] != dim:
            raise ConfigError(f"image embeddings must be [batch, {dim}], got {tuple(embeds.shape)}")
        return embeds.to(self.device)

    def low_level_strength(self, value: float | None = None) -> float:
        """``value``, else the model's recommended ``low_level_strength`` (generation.json), else 1 (off)."""
        value = value if value is not None else self.generation_defaults.get("low_level_strength")
        return 1.0 if value is None else check_low_level_strength(value)

    def class_context_scale(self, value: float | None = None) -> float:
        """``value``, else the model's recommended ``class_context_scale`` (generation.json), else 1 (as trained)."""
        value = value if value is not None else self.generation_defaults.get("class_context_scale")
        return 1.0 if value is None else check_class_context_scale(value)

    @torch.no_grad()
    def _latent_guess(self, eeg, n: int, shape: tuple) -> torch.Tensor | None:
        """The EEG model's guess of the latents, ``n`` rows per EEG (None when it makes none)."""
        guess_fn = getattr(self.eeg_conditioner, "init_latents", None)
        guess = guess_fn(self._prepare_eeg(eeg)) if guess_fn is not None else None
        if guess is None:
            return None
        guess = guess.repeat_interleave(n, dim=0)
        if tuple(guess.shape) != tuple(shape):
            raise ConfigError(f"the EEG model guesses latents of shape {tuple(guess.shape[1:])}, the UNet draws "
                              f"{tuple(shape[1:])}")
        return guess

    def _context(self, eeg, ip_adapter_image_embeds, n: int, use_cfg: bool,
                 class_scale: float = 1.0) -> tuple[torch.Tensor, dict, object]:
        """The UNet's ``encoder_hidden_states``, its extra keyword arguments and the time-conditioning context."""
        dtype = self.unet.dtype
        if self.config.conditioning == "tokens":
            if ip_adapter_image_embeds is not None:
                raise ConfigError("ip_adapter_image_embeds needs an ip-adapter pipeline; this one is conditioned "
                                  "on EEG tokens")
            cond = self.eeg_conditioner(self._prepare_eeg(eeg), class_scale).cond.repeat_interleave(n, dim=0)  # [B*n, 77, Dx]
            if use_cfg:  # unconditional rows first, as diffusers does
                cond = torch.cat([self.eeg_conditioner.null_condition(cond.shape[0]).to(cond.dtype), cond])
            return cond.to(dtype), {}, self.eeg_conditioner.conditioning(self.unet, cond.to(dtype))
        if ip_adapter_image_embeds is not None:
            embeds = self._given_image_embeds(ip_adapter_image_embeds)
        else:
            embeds = self.predict_image_embeds(eeg)
        embeds = embeds.repeat_interleave(n, dim=0)[:, None]  # [B*n, 1, P]: one image per prompt
        if use_cfg:
            embeds = torch.cat([torch.zeros_like(embeds), embeds])
        cond = self.eeg_conditioner.null_condition(embeds.shape[0]).to(self.device, dtype)  # the empty prompt
        return cond, {"added_cond_kwargs": {"image_embeds": [embeds.to(dtype)]}}, contextlib.nullcontext()

    def _start_latents(self, shape, num_inference_steps: int, latents, guess, strength: float, generator):
        """``(latents, timesteps)`` the sampling loop starts from: pure noise over the whole schedule, or (with a
        low-level ``guess``) the guess noised to the first of the last ``round(steps x strength)`` timesteps."""
        device, dtype = self.device, self.unet.dtype
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        else:
            latents = latents.to(device, dtype)
        if guess is None:
            return latents * self.scheduler.init_noise_sigma, timesteps
        # img2img: the guess noised with the noise drawn above, so seeds still hold
        start = len(timesteps) - max(1, round(len(timesteps) * strength))
        timesteps = timesteps[start:]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(start * getattr(self.scheduler, "order", 1))
        return self.scheduler.add_noise(guess.to(device, dtype), latents, timesteps[:1]), timesteps

    @torch.no_grad()
    def __call__(
        self,
        eeg,
        num_images_per_eeg: int = 5,
        num_inference_steps: int = 25,
        guidance_scale: float = 1.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        height: int | None = None,
        width: int | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        ip_adapter_image_embeds: torch.Tensor | list[torch.Tensor] | None = None,
        low_level_strength: float | None = None,
        class_context_scale: float | None = None,
    ):
        """Sample ``num_images_per_eeg`` images for each EEG window.

        Images come out grouped by EEG: rows ``i * num_images_per_eeg ... (i + 1) * num_images_per_eeg - 1``
        belong to window ``i``. ``callback_on_step_end(pipe, step, timestep, {"latents": ...})`` may
        return a dict with a replacement ``latents``. ``ip_adapter_image_embeds`` (ip-adapter pipelines):
        CLIP image embeddings ``[B, P]`` to draw from instead of ``eeg`` (pass ``eeg=None``).
        ``low_level_strength`` (0-1; None: the model's ``generation.json``, else 1): with an EEG model that guesses
        the image's latents (:meth:`ImageEmbeddingConditioner.init_latents`), sampling starts from that guess
        noised to this share of the schedule and runs only the last ``round(steps x strength)`` steps (diffusers'
        img2img convention); 1 starts from pure noise, as without a guess.
        ``class_context_scale`` (None: the model's ``generation.json``, else 1): the weight of an EEG model's class
        context (``finetune --class-context``), trained at 1; a larger weight draws the decoded class more firmly,
        as guidance does the whole condition.
        """
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ConfigError(f"output_type must be pil, np, pt or latent, got {output_type!r}")
        if num_images_per_eeg < 1 or num_inference_steps < 1:
            raise ConfigError("num_images_per_eeg and num_inference_steps must be at least 1")
        sample_size = self.unet.config.sample_size
        sample_size = sample_size[0] if isinstance(sample_size, (list, tuple)) else sample_size
        height = height or sample_size * self.vae_scale_factor
        width = width or sample_size * self.vae_scale_factor
        device = self.device
        use_cfg = guidance_scale > 1.0
        cond, unet_kwargs, conditioning = self._context(eeg, ip_adapter_image_embeds, num_images_per_eeg, use_cfg,
                                                        self.class_context_scale(class_context_scale))
        batch = cond.shape[0] // 2 if use_cfg else cond.shape[0]

        shape = (batch, self.unet.config.in_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        guess = None
        strength = self.low_level_strength(low_level_strength)
        if strength < 1 and latents is None and ip_adapter_image_embeds is None:
            guess = self._latent_guess(eeg, num_images_per_eeg, shape)
        latents, timesteps = self._start_latents(shape, num_inference_steps, latents, guess, strength, generator)

        # Only stochastic samplers take a generator (PNDM's step() has no such argument).
        step_kwargs = {"generator": generator} if "generator" in inspect.signature(self.scheduler.step).parameters else {}
        fast = self.fast_path or {}
        cuda_graphs = fast.get("compile") == "reduce-overhead" and fast.get("backend") == "inductor" \
            and device.type == "cuda"
        with conditioning:
            for i, t in enumerate(self.progress_bar(timesteps)):
                model_in = torch.cat([latents] * 2) if use_cfg else latents
                model_in = self.scheduler.scale_model_input(model_in, t)
                if cuda_graphs:  # a new step of the CUDA graph tree: the last step's outputs may be reused
                    torch.compiler.cudagraph_mark_step_begin()
                eps = self.unet(model_in, t, encoder_hidden_states=cond, **unet_kwargs).sample
                if cuda_graphs:  # schedulers keep model outputs (PNDM's history): copy out of the graph's memory
                    eps = eps.clone()
                if use_cfg:
                    eps_uncond, eps_cond = eps.chunk(2)
                    eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
                latents = self.scheduler.step(eps, t, latents, **step_kwargs).prev_sample
                if callback_on_step_end is not None:
                    out = callback_on_step_end(self, i, t, {"latents": latents})
                    if out and "latents" in out:
                        latents = out["latents"]

        if output_type == "latent":
            images = latents
        else:
            decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
            images = self.image_processor.postprocess(decoded, output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)


__all__ = ["DreamDiffusionPipeline", "resolve_pipeline_folder", "CONDITIONINGS", "COMPILE_MODES", "SCHEDULERS", "make_scheduler", "PREPROCESSING_FILE",
           "GENERATION_FILE", "read_generation_defaults", "write_generation_defaults"]
