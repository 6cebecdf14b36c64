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


def test_targets_prepared_once_per_image(monkeypatch):
    clip = hub.load_clip("builtin-tiny")
    vae = hub.load_base("builtin-tiny").vae.eval()
    targets = FrozenTargets(clip.model, clip.processor, vae)
    class Split(list):  # lists its images without reading the items, as the built-in benchmark does
        def image_keys(self):
            return [(it["image_name"], None) for it in self]

    train = Split(_items(5) + _items(2)[:1])  # img-0-0 twice (two trials of one image)
    calls = []
    real = hub.clip_image_embeds
    monkeypatch.setattr(hub, "clip_image_embeds",
                        lambda images, *a, **k: calls.append(len(images)) or real(images, *a, **k))
    plain = ImageTransform(32, train=False)
    assert targets.prepare([train, None, list(train)], plain, "cpu", torch.float32, batch_size=4) == 5
    assert calls == [4, 1]  # fixed batches in dataset order, each distinct image once
    first = targets.clip_embeds(train[:5])
    torch.testing.assert_close(first, real([it["image"] for it in train[:5]], clip.model, clip.processor))
    assert calls == [4, 1]  # prepared: nothing computed
    unnamed = _items(2, seed=2, named=False)
    targets.clip_embeds(unnamed + train[:1])
    assert calls == [4, 1, 2]  # only what was not prepared, together
    # posteriors: prepared ones come back as they are, whatever the pixels say; augmented ones are encoded
    pixels = torch.stack([plain(it["image"]) for it in train[:3]])
    with torch.no_grad():
        dist = vae.encode(pixels).latent_dist
    mean, std = targets.posterior(train[:3], torch.zeros_like(pixels), [False, False, False])
    torch.testing.assert_close(mean, dist.mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(std, dist.std, atol=1e-5, rtol=1e-5)
    mean_aug, _ = targets.posterior(train[:1], torch.zeros_like(pixels[:1]), [True])
    with torch.no_grad():
        torch.testing.assert_close(mean_aug, vae.encode(torch.zeros_like(pixels[:1])).latent_dist.mean)
    capped = FrozenTargets(clip.model, clip.processor, vae, max_bytes=1)
    capped.prepare([train], plain, "cpu", torch.float32, batch_size=2)
    assert FrozenTargets(clip.model, clip.processor, vae).prepare([list(train)], plain, "cpu", torch.float32) == 0
    assert len(capped._posteriors) == 2 and len(capped._embeds) == 5  # posteriors stop at max_bytes


def test_transform_says_whether_it_augmented():
    img = _items(1)[0]["image"]
    never = ImageTransform(32, train=True, crop_p=0.0, generator=torch.Generator().manual_seed(0))
    always = ImageTransform(32, train=True, crop_p=1.0, generator=torch.Generator().manual_seed(0))
    assert never.apply(img)[1] is False and always.apply(img)[1] is True
    torch.testing.assert_close(never.apply(img)[0], ImageTransform(32, train=False)(img))
    a, b = (ImageTransform(32, train=True, crop_p=0.5, generator=torch.Generator().manual_seed(0)) for _ in range(2))
    for _ in range(4):  # __call__ and apply make the same draws
        torch.testing.assert_close(a(img), b.apply(img)[0])
