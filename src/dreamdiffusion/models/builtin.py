"""The embedded default components (``builtin-tiny``): what "a pretrained Stable Diffusion" and
"a pretrained CLIP" are for the built-in digits benchmark on a machine with no model hub.

Folders (shipped as package data under ``dreamdiffusion/assets/builtin/``, made by
``scripts/make_builtin.py`` from a seed):

- ``base/``: laid out like a Stable Diffusion repository: ``unet/`` (UNet2DConditionModel,
  cross-attention on a ``[77, CROSS_ATTENTION_DIM]`` sequence), ``vae/`` (AutoencoderKL,
  32x32 RGB -> 4x8x8 latents), ``scheduler/`` (DDPMScheduler, scaled_linear 0.00085-0.012,
  epsilon) and ``class_embeddings.safetensors`` (a learned ``[10, 77, D]`` token sequence per digit
  plus a ``[77, D]`` null sequence, the "text encoder output" the base was trained on).
- ``clip/``: CLIPVisionModelWithProjection + ``preprocessor_config.json`` (CLIPImageProcessor at
  32 px).
- ``classifier/``: an independent ResNetForImageClassification digit judge + its image processor
  config and ``accuracy.json`` (its accuracy on the real test digits).
- ``ip_adapter/``: an IP-Adapter for ``base`` on ``clip``'s image embeddings (``ip-adapter.safetensors`` in
  the ``h94/IP-Adapter`` format, see :mod:`dreamdiffusion.models.ip_adapter`) + ``quality.json``.

When the shipped weights are absent (a source checkout before ``make_builtin.py`` was run), each
function returns a folder with the same architecture and *random* weights, built from config once
and cached, so code that integrates against these paths keeps working; ``is_trained()`` says which.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from dreamdiffusion.core.constants import BUILTIN_NAME

logger = logging.getLogger(__name__)

RESOLUTION = 32  # pixels of the images the base draws (digits upsampled from 8x8)
LATENT_CHANNELS = 4  # VAE latents are [4, 8, 8] at 32 px
CROSS_ATTENTION_DIM = 64  # width of the conditioning tokens (SD 1.5: 768)
SEQUENCE_LENGTH = 77  # number of conditioning tokens (SD 1.5's text length)
CLIP_PROJECTION_DIM = 64  # width of CLIP image_embeds (ViT-L/14: 768)
NUM_CLASSES = 10
CLASS_NAMES = [str(d) for d in range(NUM_CLASSES)]
CLASS_EMBEDDINGS_FILE = "class_embeddings.safetensors"

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "builtin"


# ----------------------------------------------------------------------------- configs
# One place for the architectures: make_builtin.py trains exactly these, the random fallback builds them.

def unet_config() -> dict:
    return dict(
        sample_size=RESOLUTION // 4, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
        layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CROSS_ATTENTION_DIM, attention_head_dim=8, norm_num_groups=16,
    )


def vae_config() -> dict:
    return dict(
        in_channels=3, out_channels=3, block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=LATENT_CHANNELS, layers_per_block=1, norm_num_groups=8, sample_size=RESOLUTION,
    )


def scheduler_config() -> dict:
    # Stable Diffusion 1.x's training schedule.
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                prediction_type="epsilon", clip_sample=False, steps_offset=1)


def clip_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                            image_size=RESOLUTION, patch_size=8, projection_dim=CLIP_PROJECTION_DIM)


def clip_processor():
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": RESOLUTION}, crop_size={"height": RESOLUTION, "width": RESOLUTION})


def classifier_config():
    from transformers import ResNetConfig

    return ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32, 64], depths=[1, 1, 1],
                        layer_type="basic", num_labels=NUM_CLASSES,
                        id2label={i: n for i, n in enumerate(CLASS_NAMES)},
                        label2id={n: i for i, n in enumerate(CLASS_NAMES)})


def classifier_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": RESOLUTION, "width": RESOLUTION}, do_resize=True, do_rescale=True,
                             do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])


# ----------------------------------------------------------------------------- saving
def save_class_embeddings(folder: Path, embeddings: torch.Tensor, null: torch.Tensor) -> None:
    from safetensors.torch import save_file

    save_file({"class_embeddings": embeddings.detach().float().contiguous(),
               "null_embedding": null.detach().float().contiguous()},
              str(Path(folder) / CLASS_EMBEDDINGS_FILE), metadata={"class_names": json.dumps(CLASS_NAMES)})


def write_base(folder: Path, unet, vae, scheduler, embeddings: torch.Tensor, null: torch.Tensor) -> None:
    """Lay ``folder`` out like a Stable Diffusion repository (no text encoder: class embeddings instead)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    scheduler.save_pretrained(folder / "scheduler")
    save_class_embeddings(folder, embeddings, null)
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_name_or_path": BUILTIN_NAME,
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": [None, None], "tokenizer": [None, None], "safety_checker": [None, None],
        "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
    }, indent=1))


def _random_components(seed: int = 0) -> dict:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection, ResNetForImageClassification

    torch.manual_seed(seed)
    return dict(
        unet=UNet2DConditionModel(**unet_config()), vae=AutoencoderKL(**vae_config()),
        scheduler=DDPMScheduler(**scheduler_config()),
        embeddings=torch.randn(NUM_CLASSES, SEQUENCE_LENGTH, CROSS_ATTENTION_DIM),
        null=torch.zeros(SEQUENCE_LENGTH, CROSS_ATTENTION_DIM),
        clip=CLIPVisionModelWithProjection(clip_config()), classifier=ResNetForImageClassification(classifier_config()),
    )


def _write_all(root: Path, parts: dict) -> None:
    write_base(root / "base", parts["unet"], parts["vae"], parts["scheduler"], parts["embeddings"], parts["null"])
    parts["clip"].save_pretrained(root / "clip")
    clip_processor().save_pretrained(root / "clip")
    parts["classifier"].save_pretrained(root / "classifier")
    classifier_processor().save_pretrained(root / "classifier")


def _cache_dir() -> Path:
    base = os.environ.get("DREAMDIFFUSION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dreamdiffusion")
    return Path(base)


def random_root() -> Path:
    """Random-weight stand-ins with the final architectures, built once and cached (atomic rename); what every
    ``*_path()`` here falls back to in a checkout without the shipped weights."""
    import diffusers
    import transformers

    root = _cache_dir() / f"{BUILTIN_NAME}-random-d{diffusers.__version__}-t{transformers.__version__}"
    if (root / "classifier" / "config.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".tmp-", dir=root.parent))
    try:
        _write_all(tmp, _random_components())
        try:
            os.replace(tmp, root)
        except OSError:  # another process won the race: its folder is as good as ours
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.warning("builtin-tiny weights are not shipped in this checkout; using RANDOM weights from %s "
                   "(run scripts/make_builtin.py to train them)", root)
    return root


def is_trained() -> bool:
    """True when the trained weights ship with the package (not the random stand-ins)."""
    return all((ASSETS / sub / "config.json").is_file() for sub in ("base/unet", "base/vae", "clip", "classifier"))


def _root() -> Path:
    return ASSETS if is_trained() else random_root()


def base_path() -> Path:
    """Folder laid out like an SD repo: ``unet/``, ``vae/``, ``scheduler/``, ``class_embeddings.safetensors``."""
    return _root() / "base"


def clip_path() -> Path:
    """Folder of a CLIPVisionModelWithProjection + CLIPImageProcessor config."""
    return _root() / "clip"


def classifier_path() -> Path:
    """Folder of the independent digit judge (AutoModelForImageClassification + AutoImageProcessor)."""
    return _root() / "classifier"


def default_pipeline_path() -> Path | None:
    """A shipped, trained DreamDiffusionPipeline folder, or None (then run `dreamdiffusion demo`)."""
    folder = ASSETS / "pipeline"
    return folder if (folder / "model_index.json").is_file() else None


def class_embeddings(folder: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The base's conditioning: ``([10, 77, D] per-digit sequences, [77, D] null sequence)``."""
    from safetensors.torch import load_file

    path = Path(folder or base_path()) / CLASS_EMBEDDINGS_FILE
    tensors = load_file(str(path))
    return tensors["class_embeddings"], tensors["null_embedding"]


__all__ = ["BUILTIN_NAME", "RESOLUTION", "CROSS_ATTENTION_DIM", "SEQUENCE_LENGTH", "CLIP_PROJECTION_DIM",
           "CLASS_NAMES", "base_path", "clip_path", "classifier_path", "default_pipeline_path", "class_embeddings",
           "is_trained", "unet_config", "vae_config", "scheduler_config", "clip_config", "classifier_config"]
