"""Stage B's frozen targets are computed once per image: the same numbers as computing them every step."""

import numpy as np
import torch
from PIL import Image

from dreamdiffusion.data.images import ImageTransform
from dreamdiffusion.models import hub
from dreamdiffusion.training.stageb import FrozenTargets


def _items(n, seed=0, named=True):
    rng = np.random.default_rng(seed)
    return [{"image": Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)),
             **({"image_name": f"img-{seed}-{i}.png"} if named else {})} for i in range(n)]


def test_clip_embeddings_once_per_image(monkeypatch):
    clip = hub.load_clip("builtin-tiny")
    targets = FrozenTargets(clip.model, clip.processor, vae=None)
    items = _items(4)
    calls = []
    real = hub.clip_image_embeds
    monkeypatch.setattr(hub, "clip_image_embeds",
                        lambda images, *a, **k: calls.append(len(images)) or real(images, *a, **k))
    first = targets.clip_embeds(items)
    torch.testing.assert_close(first, real([it["image"] for it in items], clip.model, clip.processor),
                               atol=1e-5, rtol=1e-5)
    again = targets.clip_embeds(items[::-1] + _items(1, seed=1))  # cached ones in another order, plus a new one
    assert calls == [1, 1, 1, 1, 1]  # one image at a time (the same bits cached or not), each once
    torch.testing.assert_close(again[:4], first.flip(0))
    unnamed = _items(2, seed=2, named=False)
    targets.clip_embeds(unnamed)
    targets.clip_embeds(unnamed)
    assert len(calls) == 9  # no name, no cache


def test_vae_posteriors_cached_only_for_unaugmented_images():
    vae = hub.load_base("builtin-tiny").vae.eval()
    targets = FrozenTargets(None, None, vae)
    items = _items(3)
    plain = ImageTransform(32, train=False)
    pixels = torch.stack([plain(it["image"]) for it in items])
    with torch.no_grad():
        dist = vae.encode(pixels).latent_dist
    mean, std = targets.posterior(items, pixels, [False, True, False])
    torch.testing.assert_close(mean, dist.mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(std, dist.std, atol=1e-5, rtol=1e-5)
    assert set(targets._posteriors) == {"img-0-0.png", "img-0-2.png"}  # the augmented one is never kept
    # a cached image is not encoded again: what the cache holds is what comes back, whatever the pixels say
    mean2, _ = targets.posterior(items[:1], torch.zeros_like(pixels[:1]), [False])
    torch.testing.assert_close(mean2, mean[:1])
    capped = FrozenTargets(None, None, vae, max_bytes=1)
    capped.posterior(items, pixels, [False] * 3)
    assert len(capped._posteriors) == 1  # stops growing at max_bytes


def test_transform_says_whether_it_augmented():
    img = _items(1)[0]["image"]
    never = ImageTransform(32, train=True, crop_p=0.0, generator=torch.Generator().manual_seed(0))
    always = ImageTransform(32, train=True, crop_p=1.0, generator=torch.Generator().manual_seed(0))
    assert never.apply(img)[1] is False and always.apply(img)[1] is True
    torch.testing.assert_close(never.apply(img)[0], ImageTransform(32, train=False)(img))
    a, b = (ImageTransform(32, train=True, crop_p=0.5, generator=torch.Generator().manual_seed(0)) for _ in range(2))
    for _ in range(4):  # __call__ and apply make the same draws
        torch.testing.assert_close(a(img), b.apply(img)[0])
