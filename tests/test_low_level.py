"""ATM's low-level route: a linear EEG -> VAE-latent decoder (closed form on train) and img2img from its guess.

The decoder recovers a known linear map; a pipeline at strength 1 draws exactly what it draws without a decoder;
below 1 the guess decides the image and only the last round(steps x strength) steps run; the strength rides in
generation.json, checked like every other recommended setting.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models import builtin, hub
from dreamdiffusion.models.encoders import AlignedEncoder
from dreamdiffusion.models.image_conditioner import ImageEmbeddingConditioner, LatentDecoder
from dreamdiffusion.pipeline import DreamDiffusionPipeline, read_generation_defaults, write_generation_defaults
from dreamdiffusion.training.prior import fit_latent_decoder, image_latents

N_CHANS, N_TIMES = 8, 64


def _conditioner(latent_shape=None):
    torch.manual_seed(0)
    enc = AlignedEncoder(arch="linear", in_chans=N_CHANS, in_times=N_TIMES, in_sfreq=128.0,
                         clip_dim=builtin.CLIP_PROJECTION_DIM, time_pool=8, target_scale=9.0).eval()
    return ImageEmbeddingConditioner.from_encoder(enc, builtin.CROSS_ATTENTION_DIM, latent_shape=latent_shape,
                                                  latent_bins=8)


@pytest.fixture(scope="module")
def pipes():
    """Two ip-adapter pipelines on the built-in base: without and with a latent decoder (same encoder)."""
    plain = DreamDiffusionPipeline.from_ip_adapter(_conditioner(), "builtin-tiny", "builtin-tiny")
    unet = plain.unet.config
    shape = [unet.in_channels, unet.sample_size, unet.sample_size]
    guessing = DreamDiffusionPipeline.from_ip_adapter(_conditioner(shape), "builtin-tiny", "builtin-tiny")
    for p in (plain, guessing):
        p.set_progress_bar_config(disable=True)
    return plain, guessing


def _draw(pipe, eeg, steps=4, seed=0, **kwargs):
    return pipe(eeg, num_images_per_eeg=1, num_inference_steps=steps, guidance_scale=1.0, output_type="np",
                generator=torch.Generator().manual_seed(seed), **kwargs).images


class _Pairs:
    """A paired dataset whose EEG is a known linear function of its image's latents (plus a little noise)."""

    def __init__(self, images, latents, mixing, rng, trials=2):
        self.items = []
        for i, (im, z) in enumerate(zip(images, latents)):
            for _ in range(trials):
                binned = z.reshape(-1).numpy() @ mixing + 0.01 * rng.normal(size=mixing.shape[1])
                # every time bin of 8 samples holds one value: binned_means gives `binned` back exactly
                eeg = np.repeat(binned.reshape(N_CHANS, 8), N_TIMES // 8, axis=1).astype(np.float32)
                self.items.append({"eeg": torch.from_numpy(eeg), "image": im, "image_name": f"im{i}", "label": 0})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_latent_decoder_recovers_a_known_linear_map():
    parts = hub.load_base("builtin-tiny")
    from diffusers.image_processor import VaeImageProcessor

    processor = VaeImageProcessor(vae_scale_factor=2 ** (len(parts.vae.config.block_out_channels) - 1))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(168)]
    latents = image_latents(images, parts.vae, processor)
    shape = tuple(latents.shape[1:])
    # the latents -> EEG mixing is invertible (64 EEG features from 256 latent values would not be): a 64-value
    # latent subspace carries all of it, so the decoder can get exactly those values back on unseen images
    mixing = np.zeros((latents[0].numel(), N_CHANS * 8))
    mixing[:N_CHANS * 8] = rng.normal(size=(N_CHANS * 8, N_CHANS * 8))
    train = _Pairs(images[:160], latents[:160], mixing, rng)
    decoder = LatentDecoder(N_CHANS, 8, shape)
    record = fit_latent_decoder(decoder, train, parts.vae, processor)
    assert record["n_train"] == 320 and record["n_images"] == 160 and record["alpha"] > 0
    test = _Pairs(images[160:], latents[160:], mixing, rng, trials=1)
    with torch.no_grad():
        guess = decoder(torch.stack([it["eeg"] for it in test.items]))
    assert guess.shape == (8, *shape)
    known = guess.reshape(8, -1)[:, :N_CHANS * 8]
    truth = latents[160:].reshape(8, -1)[:, :N_CHANS * 8]
    r = np.corrcoef(known.flatten().numpy(), truth.flatten().numpy())[0, 1]
    assert r > 0.95, r


def test_strength_one_is_the_plain_sampler_and_below_one_follows_the_guess(pipes):
    plain, guessing = pipes
    eeg = torch.randn(2, N_CHANS, N_TIMES)
    base = _draw(plain, eeg)
    np.testing.assert_array_equal(_draw(guessing, eeg, low_level_strength=1.0), base)
    np.testing.assert_array_equal(_draw(guessing, eeg), base)  # no generation.json: off by default
    calls = []

    def count(pipe, i, t, kwargs):
        calls.append(int(t))

    half = _draw(guessing, eeg, steps=4, low_level_strength=0.5, callback_on_step_end=count)
    assert len(calls) == 2 and not np.allclose(half, base)  # round(4 x 0.5) steps, from the guess
    with torch.no_grad():
        guessing.eeg_conditioner.latent_decoder.linear.bias.add_(2.0)  # another guess -> another image
    try:
        moved = _draw(guessing, eeg, steps=4, low_level_strength=0.5)
    finally:
        with torch.no_grad():
            guessing.eeg_conditioner.latent_decoder.linear.bias.sub_(2.0)
    assert np.abs(moved - half).mean() > 0.01
    np.testing.assert_array_equal(_draw(plain, eeg, low_level_strength=0.5), base)  # no decoder: nothing to start from
    with pytest.raises(ConfigError, match="low_level_strength"):
        _draw(guessing, eeg, low_level_strength=0.0)


def test_strength_rides_in_generation_json_and_round_trips(pipes, tmp_path):
    _, guessing = pipes
    folder = tmp_path / "pipe"
    guessing.save_pretrained(folder)
    assert json.loads((folder / "eeg_conditioner" / "config.json").read_text())["latent_shape"] == [4, 8, 8]
    write_generation_defaults(folder, 3.0, 4, "test", low_level_strength=0.5)
    assert read_generation_defaults(folder)["low_level_strength"] == 0.5
    loaded = DreamDiffusionPipeline.from_pretrained(folder)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.low_level_strength() == 0.5 and loaded.low_level_strength(1.0) == 1.0
    eeg = torch.randn(1, N_CHANS, N_TIMES)
    np.testing.assert_allclose(_draw(loaded, eeg), _draw(guessing, eeg, low_level_strength=0.5), atol=1e-5)
    for bad in (0.0, 1.5, "high"):
        (folder / "generation.json").write_text(json.dumps({"guidance_scale": 3.0, "low_level_strength": bad}))
        with pytest.raises(ConfigError, match="low_level_strength"):
            read_generation_defaults(folder)


def test_paper_conditioner_gains_a_decoder_that_saves_loads_and_starts_the_sampler(tmp_path):
    """The paper's EEG-token pipeline takes the same route: ``add_latent_decoder`` after Stage B, kept in the saved
    folder's config and weights; strength 1 still draws exactly what the pipeline drew before it had one."""
    from app_fixtures import tiny_pipeline

    pipe = tiny_pipeline(n_chans=N_CHANS, n_times=N_TIMES, sfreq=128.0)
    pipe.set_progress_bar_config(disable=True)
    eeg = torch.randn(2, N_CHANS, N_TIMES)
    before = _draw(pipe, eeg)
    assert pipe.eeg_conditioner.init_latents(eeg) is None
    unet = pipe.unet.config
    decoder = pipe.eeg_conditioner.add_latent_decoder([unet.in_channels, unet.sample_size, unet.sample_size], 8)
    with torch.no_grad():
        decoder.linear.weight.normal_()
    guess = pipe.eeg_conditioner.init_latents(eeg)
    assert guess.shape == (2, unet.in_channels, unet.sample_size, unet.sample_size)
    np.testing.assert_array_equal(_draw(pipe, eeg, low_level_strength=1.0), before)
    half = _draw(pipe, eeg, low_level_strength=0.5)
    assert np.abs(half - before).max() > 1e-3  # the guess decides the start

    pipe.save_pretrained(tmp_path / "pipe")
    config = json.loads((tmp_path / "pipe" / "eeg_conditioner" / "config.json").read_text())
    assert config["latent_shape"] == list(guess.shape[1:]) and config["latent_bins"] == 8
    loaded = DreamDiffusionPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(loaded.eeg_conditioner.init_latents(eeg), guess)
    np.testing.assert_allclose(_draw(loaded, eeg, low_level_strength=0.5), half, atol=1e-5)
