"""Stage B's ridge start of the tokenizer (training/tokenizer_init.py) on signals with a known answer."""

import numpy as np
import pytest
import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models.eeg_encoder import EEGEncoder
from dreamdiffusion.training.finetune_config import FinetuneConfig
from dreamdiffusion.training.tokenizer_init import ridge_tokenizer


def _pairs(n_images=60, trials=3, n_chans=8, n_times=64, seed=0):
    """EEG = background noise + a(image) x a fixed topography u (a bump in time); the image's embedding says a.

    Returns the items, the topography and clip_embeds(items) (the embedding of each item's image)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(n_chans)
    u /= np.linalg.norm(u)
    amp = rng.standard_normal(n_images)
    bump = np.exp(-((np.arange(n_times) - n_times / 2) ** 2) / (2 * 6.0 ** 2))
    items = []
    for img in range(n_images):
        for _ in range(trials):
            eeg = 0.5 * rng.standard_normal((n_chans, n_times)) + amp[img] * np.outer(u, bump)
            items.append({"eeg": torch.from_numpy(eeg.astype(np.float32)), "image_name": f"img{img}"})
    embeds = {f"img{i}": torch.tensor([amp[i], 1.0, 0.5, -0.25], dtype=torch.float32) for i in range(n_images)}
    return items, u, lambda batch: torch.stack([embeds[it["image_name"]] for it in batch])


def test_ridge_tokenizer_finds_the_topography_that_predicts_the_image():
    items, u, clip_embeds = _pairs()
    torch.manual_seed(0)
    enc = EEGEncoder(n_chans=8, n_times=64, sfreq=100.0, patch_size=4, embed_dim=8, depth=1, num_heads=2)
    sample = torch.stack([it["eeg"] for it in items[:64]])
    with torch.no_grad():
        before = float(enc.patch_embed(sample).std())
    record = ridge_tokenizer(enc, items, clip_embeds)
    assert record["filters"] == 2 and record["n_train"] == len(items) and record["alpha"] > 0
    w = enc.patch_embed.weight.detach()  # [D, C, p]
    # output f * p + j reads only sample j of the patch, through spatial filter f
    for out in range(w.shape[0]):
        others = [j for j in range(4) if j != out % 4]
        assert torch.all(w[out, :, others] == 0)
    first = w[0, :, 0].numpy()
    assert abs(first @ u) / np.linalg.norm(first) > 0.95  # the leading filter is the topography that carries a(image)
    assert torch.all(enc.patch_embed.bias == 0)
    with torch.no_grad():
        assert float(enc.patch_embed(sample).std()) == pytest.approx(before, rel=1e-4)  # the tokens keep their spread


def test_ridge_tokenizer_needs_a_patch_embedding_and_the_flag_is_checked():
    items, _, clip_embeds = _pairs(n_images=4, trials=2)
    with pytest.raises(ConfigError, match="patch embedding"):
        ridge_tokenizer(torch.nn.Linear(3, 3), items, clip_embeds)
    with pytest.raises(ConfigError, match="--tokenizer-init"):
        FinetuneConfig(output="x", tokenizer_init="pca").validate()
