"""Val-split model selection from generated images (evaluation/selection.py), with known answers."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from dreamdiffusion.data.synthetic import load_digit_images
from dreamdiffusion.evaluation.selection import choose_guidance, generated_clip_scores
from dreamdiffusion.models import builtin, hub


@pytest.fixture(scope="module")
def clip():
    return hub.load_clip("builtin-tiny")


@pytest.fixture(scope="module")
def items():
    images, labels = load_digit_images(32)
    picks = [int(np.flatnonzero(labels == d)[0]) for d in range(10)]  # one image of each digit
    return [{"eeg": torch.full((2, 4), float(i)), "image": Image.fromarray(images[k]).convert("RGB")}
            for i, k in enumerate(picks)]


class FakePipe:
    """Draws, for EEG i, the ground truth of item (i + shift) % n; the shift may depend on the guidance."""

    def __init__(self, items, shift_for):
        self.items, self.shift_for, self.calls = items, shift_for, []

    def __call__(self, eeg, num_images_per_eeg, num_inference_steps, guidance_scale, generator, output_type):
        self.calls.append(guidance_scale)
        n, shift = len(self.items), self.shift_for(guidance_scale)
        idx = [int(e[0, 0]) for e in eeg]
        return SimpleNamespace(images=[self.items[(i + shift) % n]["image"] for i in idx])


def test_perfect_generator_scores_one_and_a_wrong_one_scores_low(clip, items):
    assert builtin.is_trained()
    perfect = generated_clip_scores(FakePipe(items, lambda g: 0), items, clip.model, clip.processor, 2, 1.0, 0,
                                    batch_size=4)
    assert perfect["val_gen_clip_2way"] == pytest.approx(1.0)
    assert perfect["val_gen_clip_cos"] == pytest.approx(1.0, abs=1e-5)
    wrong = generated_clip_scores(FakePipe(items, lambda g: 1), items, clip.model, clip.processor, 2, 1.0, 0)
    # each image is another digit's truth: its own truth is never the most similar one
    assert wrong["val_gen_clip_2way"] < 0.5 and wrong["val_gen_clip_cos"] < 0.5


def test_choose_guidance_picks_the_scale_whose_images_match(clip, items):
    pipe = FakePipe(items, lambda g: 0 if g == 3.0 else 1)
    best, records = choose_guidance(pipe, items, clip.model, clip.processor, [5.0, 1.0, 3.0], steps=2, seed=0)
    assert best == 3.0
    assert [r["guidance"] for r in records] == [1.0, 3.0, 5.0]
    # ties go to the smallest scale
    best, _ = choose_guidance(FakePipe(items, lambda g: 0), items, clip.model, clip.processor, [5.0, 2.0], 2, 0)
    assert best == 2.0


def test_choose_guidance_draws_no_scale_it_already_has_scores_for(clip, items):
    """Scores passed as ``known`` (the demo's strength choice drew the val images at one of the scales) enter the
    choice as they are and that scale is not drawn again; they can still win it."""
    pipe = FakePipe(items, lambda g: 1)  # every drawn scale gets the wrong images
    known = {3.0: {"val_gen_clip_2way": 0.9, "val_gen_clip_cos": 0.8}}
    best, records = choose_guidance(pipe, items, clip.model, clip.processor, [5.0, 3.0], 2, 0, known=known)
    assert pipe.calls == [5.0]
    assert best == 3.0 and records[0] == {"guidance": 3.0, "val_gen_clip_2way": 0.9, "val_gen_clip_cos": 0.8}
    assert records[1]["val_gen_clip_2way"] < 0.5
    # every scale known: nothing drawn at all
    pipe = FakePipe(items, lambda g: 0)
    best, _ = choose_guidance(pipe, items, clip.model, clip.processor, [3.0], 2, 0, known=known)
    assert best == 3.0 and pipe.calls == []


def test_repeated_trials_count_once(clip, items):
    """Trials of one image (same image_name) are one ground truth: a perfect generator still scores 1."""
    trials = [dict(it, image_name=f"img{i}") for i, it in enumerate(items[:5]) for _ in range(3)]
    for k, it in enumerate(trials):
        it["eeg"] = torch.full((2, 4), float(k // 3))
    perfect = generated_clip_scores(FakePipe(items[:5], lambda g: 0), trials, clip.model, clip.processor, 2, 1.0, 0)
    assert perfect["val_gen_clip_2way"] == pytest.approx(1.0)
    from dreamdiffusion.evaluation.selection import distinct_image_items

    picked = distinct_image_items(trials, 4)
    assert [it["image_name"] for it in picked] == ["img0", "img1", "img2", "img3"]
    assert len(distinct_image_items(trials, 99)) == 5


@pytest.fixture(scope="module")
def pairs_of_digits():
    """Two different images of each of three digits, labelled: the smallest set with a within-class score."""
    images, labels = load_digit_images(32)
    picks = [int(k) for d in (0, 1, 7) for k in np.flatnonzero(labels == d)[:2]]
    return [{"eeg": torch.full((2, 4), float(i)), "image": Image.fromarray(images[k]).convert("RGB"),
             "image_name": f"img{k}", "label": int(labels[k])} for i, k in enumerate(picks)]


def test_within_class_score_and_choosing_the_guidance_by_it(clip, pairs_of_digits):
    """A copy of the own image scores 1 within its class; the other image of the own digit (shift 1 within each
    pair: 0<->1, 2<->3, 4<->5) is the class right and the image wrong, so it scores 0 there while the all-images
    2-way still counts the other digits' images as beaten. Choosing by the within-class score takes the copy."""
    items = pairs_of_digits

    class PairSwap(FakePipe):
        def __call__(self, eeg, num_images_per_eeg, num_inference_steps, guidance_scale, generator, output_type):
            self.calls.append(guidance_scale)
            swap = guidance_scale != 7.0
            idx = [int(e[0, 0]) for e in eeg]
            return SimpleNamespace(images=[self.items[i ^ 1 if swap else i]["image"] for i in idx])

    copy = generated_clip_scores(PairSwap(items, None), items, clip.model, clip.processor, 2, 7.0, 0)
    assert copy["val_gen_clip_within_class_2way"] == pytest.approx(1.0)
    swapped = generated_clip_scores(PairSwap(items, None), items, clip.model, clip.processor, 2, 3.0, 0)
    assert swapped["val_gen_clip_within_class_2way"] == pytest.approx(0.0)
    assert swapped["val_gen_clip_2way"] > 0.5  # the digit is still right against the other digits
    best, records = choose_guidance(PairSwap(items, None), items, clip.model, clip.processor, [3.0, 7.0, 12.0], 2, 0,
                                    metric="val_gen_clip_within_class_2way")
    assert best == 7.0 and [r["guidance"] for r in records] == [3.0, 7.0, 12.0]
    # without labels there is no within-class score to choose by: one clear error, not a silent pick
    unlabelled = [{k: v for k, v in it.items() if k != "label"} for it in items]
    with pytest.raises(ValueError, match="within_class"):
        choose_guidance(PairSwap(unlabelled, None), unlabelled, clip.model, clip.processor, [3.0, 7.0], 2, 0,
                        metric="val_gen_clip_within_class_2way")
