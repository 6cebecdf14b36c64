"""Steering toward the EEG's predicted CLIP embedding. Best-of-N (``--candidates``): the kept image is the candidate
CLIP finds closest to the prediction, ``candidates=1`` draws exactly the images it drew before. CLIP guidance
(``--clip-guidance``): the images end closer to the prediction in that CLIP than without it. A missing CLIP is one
clear line."""

import numpy as np
import pytest
import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.generation import draw_images, steering
from dreamdiffusion.steering import ClipGuidance, ClipRanker


@pytest.fixture(scope="module")
def tiny_pipe(parts):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from dreamdiffusion.models.conditioner import EEGConditioner
    from dreamdiffusion.pipeline import DreamDiffusionPipeline
    from stageb_helpers import CLIP_DIM, CROSS

    base = parts / "base"
    cond = EEGConditioner.from_encoder(parts / "enc", cross_attention_dim=CROSS, clip_dim=CLIP_DIM)
    pipe = DreamDiffusionPipeline(
        unet=UNet2DConditionModel.from_pretrained(base / "unet"), vae=AutoencoderKL.from_pretrained(base / "vae"),
        scheduler=DDIMScheduler.from_pretrained(base / "scheduler"), eeg_conditioner=cond)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(0)
    eegs = [torch.randn(cond.config.n_chans, cond.config.n_times, generator=gen) for _ in range(3)]
    return pipe, eegs


def _arrays(rows):
    return np.stack([np.stack([np.asarray(im) for im in row]) for row in rows])


def test_best_of_n_keeps_the_candidate_closest_to_the_prediction(tiny_pipe, parts):
    pipe, eegs = tiny_pipe
    ranker = ClipRanker(str(parts / "clip"))
    every = draw_images(pipe, eegs, 4, 2, 1.0, seed=3)  # the 4 draws best-of-4 chooses among (seeds j = 0..3)
    scores = ranker.scores(pipe, torch.stack(eegs), every)
    assert scores.shape == (3, 4) and torch.isfinite(scores).all()
    best = draw_images(pipe, eegs, 1, 2, 1.0, seed=3, candidates=4, ranker=ranker)
    for row_best, row_all, s in zip(_arrays(best), _arrays(every), scores):
        assert np.array_equal(row_best[0], row_all[int(s.argmax())])
    # two kept of 2 x 3 drawn: best first, and the record of which draw each one is
    two = draw_images(pipe, eegs[:1], 2, 2, 1.0, seed=3, candidates=3, ranker=ranker)
    six = draw_images(pipe, eegs[:1], 6, 2, 1.0, seed=3)
    s6 = ranker.scores(pipe, torch.stack(eegs[:1]), six)[0]
    order = s6.argsort(descending=True)[:2].tolist()
    assert [np.asarray(im).tolist() for im in two[0]] == [np.asarray(six[0][j]).tolist() for j in order]
    assert [im.info["sample_seed"] for im in two[0]] == [six[0][j].info["sample_seed"] for j in order]


def test_one_candidate_draws_the_same_images(tiny_pipe, parts):
    pipe, eegs = tiny_pipe
    a = draw_images(pipe, eegs, 2, 2, 1.0, seed=5)
    b = draw_images(pipe, eegs, 2, 2, 1.0, seed=5, candidates=1, ranker=ClipRanker(str(parts / "clip")))
    assert np.array_equal(_arrays(a), _arrays(b))


def test_candidates_need_a_clip(tiny_pipe, tmp_path):
    pipe, eegs = tiny_pipe
    with pytest.raises(ConfigError, match="CLIP"):
        draw_images(pipe, eegs, 1, 2, 1.0, seed=0, candidates=2)
    with pytest.raises(ConfigError, match="--clip"):
        steering(2, 0.0, None, tmp_path)  # a folder that records no CLIP
    with pytest.raises(ConfigError, match="--clip"):
        steering(1, 0.1, None, tmp_path)
    assert steering(1, 0.0, None, tmp_path) == (None, None)
    with pytest.raises(ConfigError, match="--candidates"):
        steering(0, 0.0, "builtin-tiny")
    with pytest.raises(ConfigError, match="--clip-guidance"):
        steering(1, -0.1, "builtin-tiny")


def test_a_clip_of_another_width_is_one_line(tiny_pipe):
    pipe, eegs = tiny_pipe
    ranker = ClipRanker("builtin-tiny")  # 64-wide embeddings; the tiny conditioner predicts 24-wide ones
    with pytest.raises(ConfigError, match="wide"):
        draw_images(pipe, eegs[:1], 1, 2, 1.0, seed=0, candidates=2, ranker=ranker)


def _cosines(ranker, pipe, eegs, rows):
    return ranker.scores(pipe, torch.stack(eegs), rows)[:, 0]


def test_clip_guidance_brings_the_images_toward_the_prediction(tiny_pipe, parts):
    pipe, eegs = tiny_pipe
    ranker = ClipRanker(str(parts / "clip"))  # measures the cosine the guidance climbs
    plain = draw_images(pipe, eegs, 1, 4, 1.0, seed=2)
    guided = draw_images(pipe, eegs, 1, 4, 1.0, seed=2, guidance_clip=ClipGuidance(ranker.clip, 0.2))
    before, after = _cosines(ranker, pipe, eegs, plain), _cosines(ranker, pipe, eegs, guided)
    assert (after > before).all(), (before, after)
    again = draw_images(pipe, eegs, 1, 4, 1.0, seed=2, guidance_clip=ClipGuidance(ranker.clip, 0.2))
    assert np.array_equal(_arrays(again), _arrays(guided))  # deterministic
    # the app's progress callback still runs, after the guidance
    seen = []
    draw_images(pipe, eegs[:1], 1, 3, 1.0, seed=2, guidance_clip=ClipGuidance(ranker.clip, 0.2),
                callback_on_step_end=lambda p, i, t, kw: seen.append(i))
    assert seen == [0, 1, 2]
    with pytest.raises(ConfigError, match="--clip-guidance"):
        ClipGuidance(ranker.clip, 0.0)


class _Counting(ClipGuidance):
    """Counts the gradient reads (each :meth:`guide` call decodes and reads CLIP once)."""

    reads = 0

    def guide(self, pipe, latents, target):
        self.reads += 1
        return super().guide(pipe, latents, target)


def test_clip_guidance_steps_moves_k_times_per_sampler_step_from_fresh_gradients(tiny_pipe, parts):
    pipe, eegs = tiny_pipe
    ranker = ClipRanker(str(parts / "clip"))
    one = _Counting(ranker.clip, 0.1)
    three = _Counting(ranker.clip, 0.1, steps=3)
    plain = draw_images(pipe, eegs, 1, 4, 1.0, seed=2)
    once = draw_images(pipe, eegs, 1, 4, 1.0, seed=2, guidance_clip=one)
    thrice = draw_images(pipe, eegs, 1, 4, 1.0, seed=2, guidance_clip=three)
    assert (one.reads, three.reads) == (4, 12)  # one batch, 4 sampler steps
    before, after = _cosines(ranker, pipe, eegs, plain), _cosines(ranker, pipe, eegs, thrice)
    assert (after > before).all(), (before, after)
    assert not np.array_equal(_arrays(once), _arrays(thrice))
    # one sampler step's callback = three guide calls in a row, each from where the last one left the latents
    gen = torch.Generator().manual_seed(3)
    target = torch.nn.functional.normalize(torch.randn(1, one.width(), generator=gen), dim=-1)
    c, n = pipe.unet.config.in_channels, pipe.unet.config.sample_size
    latents = torch.randn(1, c, n, n, generator=gen)
    by_hand = latents
    for _ in range(3):
        by_hand = one.guide(pipe, by_hand, target)
    out = three.callback(target)(pipe, 0, 0, {"latents": latents})["latents"]
    torch.testing.assert_close(out, by_hand)
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="--clip-guidance-steps"):
            ClipGuidance(ranker.clip, 0.1, steps=bad)
    with pytest.raises(ConfigError, match="--clip-guidance-steps"):
        steering(1, 0.1, str(parts / "clip"), clip_guidance_steps=0)
