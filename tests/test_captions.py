"""Caption contexts (training/captions.py): the base's own context for each label, the warm-up's mapper target."""

import json
import shutil

import pytest
import torch

from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.models import builtin, hub
from dreamdiffusion.training.captions import CaptionTargets, base_null_context
from dreamdiffusion.training.finetune import FinetuneConfig, Trainer
from stageb_helpers import CROSS, PairList, add_text_encoder

pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def test_a_class_conditional_base_gives_its_class_embeddings():
    embeds, null = builtin.class_embeddings()
    captions = CaptionTargets("builtin-tiny")
    got = captions([{"label": 3}, {"label": "7"}, {"label": 3}])
    assert torch.equal(got, torch.stack([embeds[3], embeds[7], embeds[3]]).float())
    assert captions.scale == pytest.approx(float(embeds.float().var()), rel=1e-5)
    # the loss is zero on the targets themselves and one where the mapper puts out the contexts' mean
    assert float(captions.loss(got, [{"label": 3}, {"label": 7}, {"label": 3}])) == 0.0
    mean = embeds.float().mean().expand_as(got)
    assert float(captions.loss(mean, [{"label": 3}, {"label": 7}, {"label": 3}])) == pytest.approx(
        float(((got - mean) ** 2).mean() / embeds.float().var()), rel=1e-5)
    assert torch.equal(base_null_context("builtin-tiny"), null.float())


def test_unknown_or_missing_labels_are_one_clear_error():
    captions = CaptionTargets("builtin-tiny", source="pairs.csv")
    with pytest.raises(DataError, match=r"labels \['cat'\] are not among the base's classes"):
        captions([{"label": "cat"}])
    with pytest.raises(DataError, match="needs labelled pairs"):
        captions([{"label": None}])
    with pytest.raises(ConfigError, match="caption contexts are"):
        captions.loss(torch.zeros(1, 5, 64), [{"label": 1}])


def test_a_text_to_image_base_encodes_a_caption_per_label(parts, tmp_path):
    base = add_text_encoder(shutil.copytree(parts / "base", tmp_path / "sd"))
    captions = CaptionTargets(str(base))
    got = captions([{"label": 0}, {"label": 1}, {"label": 0}])
    assert got.shape == (3, 77, CROSS)
    assert torch.equal(got[0], got[2]) and not torch.allclose(got[0], got[1])
    assert torch.allclose(got[1], hub.prompt_contexts(str(base), ["a photo of a 1"])[0])
    assert base_null_context(str(base)).shape == (77, CROSS)


def _mapper_after_setup(cfg: FinetuneConfig) -> tuple[Trainer, dict]:
    torch.manual_seed(0)  # the same fresh mappers in every run below
    trainer = Trainer(cfg, PairList(16), PairList(4))
    trainer.setup()
    return trainer, {k: v.clone() for k, v in trainer.parts.conditioner.token_mapper.state_dict().items()}


def test_the_warmup_teaches_the_mapper_the_captions_and_the_null_starts_from_the_base(parts, tmp_path):
    base = add_text_encoder(shutil.copytree(parts / "base", tmp_path / "sd"))
    common = dict(encoder=str(parts / "enc"), base=str(base), clip=str(parts / "clip"), batch_size=4, max_steps=1,
                  validate_every=0, validation_images=0, checkpoint_every=0, seed=3, clip_warmup_learning_rate=1e-2)
    taught, taught_mapper = _mapper_after_setup(FinetuneConfig(
        output=str(tmp_path / "o"), clip_warmup_steps=30, caption_weight=1.0, null_init="base", **common))
    records = json.loads((tmp_path / "o" / "clip_warmup.json").read_text())["records"]
    assert records[-1]["caption_loss"] < 0.5 * records[0]["caption_loss"]
    assert torch.allclose(taught.parts.conditioner.null_cond.detach(), base_null_context(str(base)))
    # without the caption weight the warm-up leaves the mapper as it was built and records no caption loss
    plain, plain_mapper = _mapper_after_setup(FinetuneConfig(output=str(tmp_path / "p"), clip_warmup_steps=30,
                                                             **common))
    _, fresh_mapper = _mapper_after_setup(FinetuneConfig(output=str(tmp_path / "f"), **common))
    assert "caption_loss" not in json.loads((tmp_path / "p" / "clip_warmup.json").read_text())["records"][0]
    assert all(torch.equal(plain_mapper[k], fresh_mapper[k]) for k in fresh_mapper)
    assert not all(torch.equal(taught_mapper[k], fresh_mapper[k]) for k in fresh_mapper)
    assert not torch.allclose(plain.parts.conditioner.null_cond.detach(), base_null_context(str(base)))


def test_caption_flags_are_checked():
    with pytest.raises(ConfigError, match="--null-init"):
        FinetuneConfig(output="x", null_init="zeros").validate()
    with pytest.raises(ConfigError, match="--caption-weight must be at least 0"):
        FinetuneConfig(output="x", caption_weight=-1.0, clip_warmup_steps=5).validate()
    with pytest.raises(ConfigError, match="--clip-warmup-steps"):
        FinetuneConfig(output="x", caption_weight=1.0).validate()
