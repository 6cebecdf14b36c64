"""The image-embedding route: DreamDiffusionPipeline(conditioning="ip-adapter") with diffusers' IP-Adapter
machinery, on the built-in tiny parts and on a tiny local folder laid out like h94/IP-Adapter."""

import json
import shutil

import numpy as np
import pytest
import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.data.synthetic import load_digit_images, split_images
from dreamdiffusion.models import builtin, hub
from dreamdiffusion.models.conditioner import EEGConditioner
from dreamdiffusion.models.ip_adapter import (
    H94_SD15,
    new_ip_adapter_state_dict,
    resolve_ip_adapter,
    save_ip_adapter,
)
from dreamdiffusion.pipeline import DreamDiffusionPipeline
from stageb_helpers import CLIP_DIM, CROSS, N_CHANS, N_TIMES  # parts: conftest.py


def _tiny_conditioner(parts, cross=builtin.CROSS_ATTENTION_DIM, clip_dim=builtin.CLIP_PROJECTION_DIM):
    return EEGConditioner.from_encoder(parts / "enc", cross, clip_dim, None)


@pytest.fixture(scope="module")
def ip_pipe(parts):
    cond = _tiny_conditioner(parts)
    pipe = DreamDiffusionPipeline.from_ip_adapter(cond, "builtin-tiny", "builtin-tiny", image_embed_norm=9.0,
                                                  preprocessing={"l_freq": 1.0})
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def test_digits_embeds():
    """True CLIP image embeddings of 20 test digits (2 per class) and their labels."""
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    images, labels = load_digit_images(builtin.RESOLUTION)
    test = np.array(split_images(labels, seed=0)["test"])
    pick = np.concatenate([test[labels[test] == d][:2] for d in range(10)])
    model = CLIPVisionModelWithProjection.from_pretrained(builtin.clip_path()).eval()
    proc = CLIPImageProcessor.from_pretrained(builtin.clip_path())
    pv = proc([Image.fromarray(im) for im in images[pick]], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return model(pixel_values=pv).image_embeds, labels[pick]


def _draw(pipe, eeg=None, embeds=None, guidance=3.0, n=1):
    return pipe(eeg, num_images_per_eeg=n, num_inference_steps=4, guidance_scale=guidance,
                generator=torch.Generator().manual_seed(3), output_type="np", ip_adapter_image_embeds=embeds).images


def test_route_uses_diffusers_ip_adapter_machinery(ip_pipe):
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0
    from diffusers.models.embeddings import MultiIPAdapterImageProjection

    assert ip_pipe.config.conditioning == "ip-adapter"
    assert isinstance(ip_pipe.unet.encoder_hid_proj, MultiIPAdapterImageProjection)
    procs = [p for n, p in ip_pipe.unet.attn_processors.items() if n.endswith("attn2.processor")]
    assert procs and all(isinstance(p, IPAdapterAttnProcessor2_0) for p in procs)
    _, null = builtin.class_embeddings()
    torch.testing.assert_close(ip_pipe.eeg_conditioner.null_cond.detach(), null)  # the base's empty prompt


def test_images_follow_the_embedding_and_the_scale(ip_pipe, test_digits_embeds):
    embeds = test_digits_embeds[0][:2]
    a = _draw(ip_pipe, embeds=embeds)
    assert a.shape == (2, builtin.RESOLUTION, builtin.RESOLUTION, 3) and np.isfinite(a).all()
    b = _draw(ip_pipe, embeds=embeds.flip(0))
    assert np.abs(a[0] - b[0]).mean() > 0.02  # another embedding, same noise: another image
    ip_pipe.set_ip_adapter_scale(0.0)
    try:
        c, d = _draw(ip_pipe, embeds=embeds, guidance=1.0), _draw(ip_pipe, embeds=embeds.flip(0), guidance=1.0)
    finally:
        ip_pipe.set_ip_adapter_scale(ip_pipe.config.ip_adapter_scale)
    np.testing.assert_allclose(c, d, atol=1e-5)  # scale 0: the adapter is off, the embedding has no say


def test_eeg_route_is_the_predicted_embedding(ip_pipe):
    eeg = torch.randn(2, N_CHANS, N_TIMES)
    pred = ip_pipe.predict_image_embeds(eeg)
    assert pred.shape == (2, builtin.CLIP_PROJECTION_DIM)
    torch.testing.assert_close(pred.norm(dim=-1), torch.full((2,), 9.0))  # rescaled to image_embed_norm
    np.testing.assert_allclose(_draw(ip_pipe, eeg, n=2), _draw(ip_pipe, embeds=pred, n=2), atol=1e-6)
    with pytest.raises(ConfigError, match=r"\[batch, 64\]"):
        _draw(ip_pipe, embeds=torch.zeros(2, 5))


def test_trained_builtin_adapter_draws_the_embedded_digit(ip_pipe, test_digits_embeds):
    """Images drawn from the TRUE CLIP embedding of test digits are judged the right digit well above chance."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    assert (builtin.ASSETS / "ip_adapter" / "ip-adapter.safetensors").is_file(), "run make_builtin.py --parts ip_adapter"
    embeds, labels = test_digits_embeds
    images = ip_pipe(None, num_images_per_eeg=1, num_inference_steps=8, guidance_scale=3.0,
                     generator=torch.Generator().manual_seed(0), ip_adapter_image_embeds=embeds).images
    judge = AutoModelForImageClassification.from_pretrained(builtin.classifier_path()).eval()
    proc = AutoImageProcessor.from_pretrained(builtin.classifier_path())
    with torch.no_grad():
        pred = judge(**proc([im.convert("RGB") for im in images], return_tensors="pt")).logits.argmax(-1).numpy()
    acc = float((pred == labels).mean())
    quality = json.loads((builtin.ASSETS / "ip_adapter" / "quality.json").read_text())
    assert acc >= 0.6, acc  # chance 0.1; make_builtin.py's check on all test digits is in quality.json
    assert quality["chance"] == pytest.approx(0.1) and quality["by_guidance"]["3.0"]["judged_accuracy"] > 0.6


@pytest.mark.parametrize("kind", ["tokens", "ip-adapter"])
def test_either_kind_saves_and_loads_with_identical_images(kind, ip_pipe, tmp_path, parts):
    if kind == "ip-adapter":
        pipe = ip_pipe
    else:
        base = hub.load_base("builtin-tiny")
        cond = _tiny_conditioner(parts)
        from dreamdiffusion.pipeline import make_scheduler

        pipe = DreamDiffusionPipeline(base.unet, base.vae, make_scheduler("dpm", base.scheduler_config), cond)
        pipe.set_progress_bar_config(disable=True)
    eeg = torch.randn(2, N_CHANS, N_TIMES)
    before = _draw(pipe, eeg)
    pipe.save_pretrained(tmp_path / "p")
    files = [f for f in (tmp_path / "p").rglob("*") if f.is_file()]
    assert files and all(f.suffix in (".json", ".safetensors") for f in files), files
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["conditioning"] == kind
    # the saved UNet is the stock base UNet (the adapter lives beside it)
    assert json.loads((tmp_path / "p" / "unet" / "config.json").read_text())["encoder_hid_dim_type"] is None
    assert ((tmp_path / "p" / "ip_adapter" / "ip-adapter.safetensors").is_file()) == (kind == "ip-adapter")
    np.testing.assert_array_equal(_draw(pipe, eeg), before)  # saving left the pipeline as it was
    loaded = DreamDiffusionPipeline.from_pretrained(tmp_path / "p")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.conditioning == kind and loaded.config.image_embed_norm == pipe.config.image_embed_norm
    assert loaded.preprocessing.get("l_freq") == pipe.preprocessing.get("l_freq")
    np.testing.assert_array_equal(_draw(loaded, eeg), before)


def test_token_pipeline_refuses_image_embeddings(parts):
    base = hub.load_base("builtin-tiny")
    from dreamdiffusion.pipeline import make_scheduler

    pipe = DreamDiffusionPipeline(base.unet, base.vae, make_scheduler("dpm", base.scheduler_config),
                                  _tiny_conditioner(parts))
    with pytest.raises(ConfigError, match="ip-adapter pipeline"):
        _draw(pipe, torch.randn(1, N_CHANS, N_TIMES), embeds=torch.zeros(1, builtin.CLIP_PROJECTION_DIM))
    with pytest.raises(ConfigError, match="conditioning must be one of"):
        DreamDiffusionPipeline(base.unet, base.vae, pipe.scheduler, pipe.eeg_conditioner, conditioning="text")


def test_local_folder_laid_out_like_h94(tmp_path, parts):
    """The SD 1.5 + h94/IP-Adapter loading code, on a tiny local copy of that layout (never the hub here)."""
    from diffusers import UNet2DConditionModel

    base = shutil.copytree(parts / "base", tmp_path / "base")  # changed below: a copy
    (base / "class_embeddings.safetensors").unlink(missing_ok=True)
    from dreamdiffusion.models.builtin import save_class_embeddings

    save_class_embeddings(base, torch.zeros(10, 77, CROSS), torch.randn(77, CROSS))
    repo = tmp_path / "IP-Adapter"
    (repo / H94_SD15[0]).mkdir(parents=True)
    shutil.copytree(parts / "clip", repo / H94_SD15[2])
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    state = new_ip_adapter_state_dict(unet, CLIP_DIM, torch.Generator().manual_seed(0))
    save_ip_adapter(state, repo / H94_SD15[0])
    (repo / H94_SD15[0] / "ip-adapter.safetensors").rename(repo / H94_SD15[0] / H94_SD15[1])
    src = resolve_ip_adapter(str(repo))
    assert (src.subfolder, src.weight_name) == H94_SD15[:2] and src.image_encoder == str(repo / H94_SD15[2])
    # the CLIP the EEG gets aligned to; like h94's, this image encoder has no processor config: CLIP's default
    (repo / H94_SD15[2] / "preprocessor_config.json").unlink()
    clip = hub.load_clip(src.image_encoder)
    size = clip.model.config.image_size
    assert clip.processor.crop_size == {"height": size, "width": size} and clip.processor.image_mean[0] != 0.5
    cond = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM, None)
    pipe = DreamDiffusionPipeline.from_ip_adapter(cond, str(base), str(repo))
    pipe.set_progress_bar_config(disable=True)
    torch.testing.assert_close(pipe.unet.encoder_hid_proj.image_projection_layers[0].image_embeds.weight,
                               state["image_proj"]["proj.weight"])
    assert _draw(pipe, torch.randn(1, N_CHANS, N_TIMES)).shape == (1, 16, 16, 3)
    with pytest.raises(ConfigError, match="no IP-Adapter here"):
        resolve_ip_adapter(str(tmp_path / "base"))
    with pytest.raises(ConfigError, match="unknown --ip-adapter"):
        resolve_ip_adapter("not/a-known-adapter")
