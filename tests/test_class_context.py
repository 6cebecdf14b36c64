"""The class context (models/class_reader.py, training/class_context.py): the discriminant held exactly, fitted
before the warm-up, saved with the model, refused without labels."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dreamdiffusion.core.discriminant import fit_lda
from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.data.transforms import binned_means
from dreamdiffusion.models.class_reader import ClassReader
from dreamdiffusion.models.conditioner import EEGConditioner
from dreamdiffusion.training.class_context import _linear_form
from dreamdiffusion.training.finetune import FinetuneConfig, Trainer
from stageb_helpers import PairList, add_text_encoder

pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def _classes(n_classes: int, n: int = 90, chans: int = 4, times: int = 32, seed: int = 0):
    """EEG whose channel pattern depends on the class, under noise: ``(eeg [n, C, T], labels)``."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 1, (n_classes, chans, 1))
    labels = np.arange(n) % n_classes
    eeg = patterns[labels] + rng.normal(0, 1.5, (n, chans, times))
    return torch.from_numpy(eeg.astype(np.float32)), labels


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_reader_holds_the_discriminant_exactly(n_classes):
    eeg, labels = _classes(n_classes)
    lda = fit_lda(binned_means(eeg.numpy(), 4), labels)
    weight, bias = _linear_form(lda)
    contexts = torch.randn(n_classes, 5, 6)
    reader = ClassReader(4, 32, n_classes, 4, (5, 6)).requires_grad_(False)
    reader.load_fit(weight, bias, contexts)
    probs = reader.posterior(eeg)
    assert np.allclose(probs.numpy(), lda.predict_proba(binned_means(eeg.numpy(), 4)), atol=1e-4)
    assert torch.allclose(reader(eeg), torch.einsum("bk,kld->bld", probs, contexts), atol=1e-5)
    # the classes are told apart, so the context is mostly the own class's
    assert float((probs.argmax(1).numpy() == labels).mean()) > 0.8
    with pytest.raises(ValueError, match="expected shape"):
        reader.load_fit(weight[:, :3], bias, contexts)


def _trainer(parts, tmp_path, train, **extra) -> Trainer:
    base = add_text_encoder(shutil.copytree(parts / "base", tmp_path / "sd"))
    cfg = FinetuneConfig(output=str(tmp_path / "o"), encoder=str(parts / "enc"), base=str(base),
                         clip=str(parts / "clip"), batch_size=4, max_steps=1, validate_every=0, validation_images=0,
                         checkpoint_every=0, seed=3, class_context=True, **extra)
    trainer = Trainer(cfg, train, PairList(8, seed=1))
    trainer.setup()
    return trainer


def test_finetune_class_context_fits_the_reader_before_the_warmup_and_saves_it(parts, tmp_path):
    trainer = _trainer(parts, tmp_path, PairList(24), clip_warmup_steps=5, caption_weight=1.0)
    record = json.loads((tmp_path / "o" / "class_context.json").read_text())
    assert record["classes"] == ["0", "1"] and record["n_train"] == 24
    assert record["train_accuracy"] == 1.0 and record["val_accuracy"] == 1.0  # the EEG's mean is the class
    cond = trainer.parts.conditioner.eval()
    reader = cond.class_reader
    assert reader is not None and not any(p.requires_grad for p in reader.parameters())
    # the rows it weighs are the base's own caption contexts, in the record's class order
    from dreamdiffusion.training.captions import CaptionTargets

    captions = CaptionTargets(trainer.cfg.base)
    assert torch.allclose(reader.contexts, captions([{"label": c} for c in record["classes"]]))
    eeg = torch.stack([PairList(4, seed=2)[i]["eeg"] for i in range(4)])
    with torch.no_grad():
        out = cond(eeg)
        # the class context is added to what the mappers put out
        tokens = cond.encoder(eeg)
        cond.class_reader = None
        plain = cond.from_tokens(tokens, eeg).cond
        cond.class_reader = reader
        assert torch.allclose(out.cond - plain, reader(eeg), atol=1e-5)
        # sampled at another weight (generation.json's class_context_scale), the class context alone moves
        twice = cond(eeg, class_scale=2.0)
        assert torch.allclose(twice.cond - out.cond, reader(eeg), atol=1e-5)
        assert torch.equal(twice.clip_embeds, out.clip_embeds)
        with pytest.raises(ConfigError, match="class context reads the EEG window"):
            cond.from_tokens(tokens)
    cond.save_pretrained(tmp_path / "saved")
    loaded = EEGConditioner.from_pretrained(tmp_path / "saved").eval()
    assert loaded.config.class_contexts == 2 and loaded.config.class_context_bins == 8
    with torch.no_grad():
        assert torch.equal(loaded(eeg).cond, out.cond)


def test_class_context_needs_labelled_pairs(parts, tmp_path):
    train = PairList(8)
    for item in train.items:
        item["label"] = None
    with pytest.raises(DataError, match="--class-context needs labelled pairs"):
        _trainer(parts, tmp_path, train)


def test_the_class_context_scale_is_a_checked_recommendation(tmp_path):
    from dreamdiffusion.core.generation_file import read_generation_defaults, write_generation_defaults
    from dreamdiffusion.pipeline import DreamDiffusionPipeline

    write_generation_defaults(tmp_path, guidance_scale=3.0, class_context_scale=2.0)
    assert read_generation_defaults(tmp_path)["class_context_scale"] == 2.0
    with pytest.raises(ConfigError, match="class_context_scale must be a number >= 0"):
        write_generation_defaults(tmp_path, guidance_scale=3.0, class_context_scale=-1.0)
    def scale(defaults, value=None):  # the pipeline's getter reads only its recommendations
        return DreamDiffusionPipeline.class_context_scale(SimpleNamespace(generation_defaults=defaults), value)

    assert scale(read_generation_defaults(tmp_path)) == 2.0 and scale(read_generation_defaults(tmp_path), 1.5) == 1.5
    assert scale({}) == 1.0
    with pytest.raises(ConfigError, match="class_context_scale must be a number >= 0"):
        scale({}, -0.5)
