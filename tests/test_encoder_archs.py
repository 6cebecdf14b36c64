"""The field's EEG encoders beyond `align`: ATCNet, their token sequences in the paper's conditioner
(`finetune --encoder-arch`, `finetune --encoder ALIGNED_DIR`) and `pretrain --encoder-arch`'s refusal."""

import json

import pytest
import torch

from dreamdiffusion.cli import main
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models.conditioner import EEGConditioner, load_encoder
from dreamdiffusion.models.encoders import ARCHS, AlignedEncoder, ATCNet, build_backbone, load_aligned_encoder
from dreamdiffusion.training.finetune import FinetuneConfig, Trainer, finetune
from stageb_helpers import CLIP_DIM, CROSS, PairList

SFREQ = 512 / 0.44  # the paper's window: 512 samples in 0.44 s


# ------------------------------------------------------------------------------------------------------ ATCNet

def test_atcnet_shapes_and_the_papers_size():
    model = ATCNet(128, 512, SFREQ).eval()
    x = torch.randn(2, 128, 512)
    assert model.tokens(x).shape == (2, 5, 32)  # one token per attention window, the TCN's filters wide
    assert model(x).shape == (2, model.out_features) == (2, 160)
    assert ATCNet(128, 512, SFREQ, concat=False).eval()(x).shape == (2, 32)
    # BCI-IV 2a (22 channels, 4.5 s at 250 Hz): the paper's 113,732 parameters less its 5 dense heads (4 x 33 each)
    paper = ATCNet(22, 1125, 250.0)
    assert sum(p.numel() for p in paper.parameters()) == 113_732 - 5 * 4 * 33
    assert paper.window == 16  # 1125 samples pooled by 56 -> 20 steps, windows of 16


@pytest.mark.parametrize("n_times", [64, 10, 3])
def test_atcnet_short_windows_shrink_pools_and_windows(n_times):
    model = ATCNet(6, n_times, 145.0)
    x = torch.randn(2, 6, n_times)
    out = model(x)
    assert torch.isfinite(out).all() and out.shape == (2, model.out_features)
    out.sum().backward()  # trains: every window at least one step long
    assert model.window >= 1 and model.n_windows == min(5, n_times)
    if n_times == 64:
        assert model.window >= 4  # at least one TCN kernel per window


def test_atcnet_aligned_encoder_round_trip(tmp_path):
    model = AlignedEncoder(arch="atcnet", in_chans=128, in_times=512, in_sfreq=SFREQ, clip_dim=16).eval()
    eeg = torch.randn(2, 128, 512)
    out = model(eeg)
    model.save_pretrained(tmp_path)
    again = load_aligned_encoder(tmp_path)
    assert again.config.arch == "atcnet" and torch.equal(again(eeg), out)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_backbone_gives_tokens_whose_features_are_its_output(arch):
    options = {"preset": "tiny"} if arch == "msm" else None
    backbone = build_backbone(arch, 8, 64, 128.0, options).eval()
    x = torch.randn(3, 8, 64)
    tokens = backbone.tokens(x)
    assert tokens.shape == (3, *backbone.token_shape) and torch.isfinite(tokens).all()  # sizes known before a run
    assert backbone(x).shape == (3, backbone.out_features)
    if arch not in ("msm", "atcnet"):  # these two pool or concatenate; the rest flatten the same numbers
        assert torch.equal(torch.sort(backbone(x).flatten()).values, torch.sort(tokens.flatten()).values)


# --------------------------------------------------------------------------------- the conditioner's token path

@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "msm"])
def test_conditioner_of_each_arch_saves_and_loads(arch, tmp_path):
    cond = EEGConditioner.from_arch(arch, 8, 64, 128.0, CROSS, CLIP_DIM, time_embed_dim=16).eval()
    assert not cond.paper_layout
    cond.enable_gradient_checkpointing()  # finetune --gradient-checkpointing takes every arch
    eeg = torch.randn(2, 8, 64)
    out = cond(eeg)
    assert out.cond.shape == (2, 77, CROSS) and out.clip_embeds.shape == (2, CLIP_DIM)
    cond.save_pretrained(tmp_path)
    again = EEGConditioner.from_pretrained(tmp_path).eval()  # diffusers' default: built on meta, then filled
    assert torch.equal(again(eeg).cond, out.cond)
    with pytest.raises(ConfigError, match="not the paper's transformer"):
        load_encoder(tmp_path)  # probes and align --encoder take the transformer only


@pytest.mark.parametrize("arch", ARCHS)
def test_image_embedding_conditioner_of_each_arch_loads_as_diffusers_does(arch, tmp_path):
    from dreamdiffusion.models.image_conditioner import ImageEmbeddingConditioner

    options = {"preset": "tiny"} if arch == "msm" else None
    aligned = AlignedEncoder(arch=arch, in_chans=8, in_times=64, in_sfreq=128.0, clip_dim=16, arch_options=options)
    ImageEmbeddingConditioner.from_encoder(aligned, CROSS).save_pretrained(tmp_path)
    eeg = torch.randn(2, 8, 64)
    again = ImageEmbeddingConditioner.from_pretrained(tmp_path).eval()  # no sizes from a dry run on meta weights
    assert torch.allclose(again(eeg).clip_embeds, aligned.eval().embed(eeg), atol=1e-6)


def _cfg(parts, out, **kw):
    base = dict(output=str(out), encoder=None, base=str(parts / "base"), clip=str(parts / "clip"), batch_size=2,
                max_steps=2, validate_every=0, validation_images=0, checkpoint_every=0, seed=3)
    return FinetuneConfig(**{**base, **kw})


@pytest.mark.usefixtures("fresh_accelerate_state")
def test_finetune_encoder_arch_eegnet_trains_and_generates(parts, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["finetune", "--dataset", "folder", "--root", str(parts / "data"), "--encoder", "none",
                 "--encoder-arch", "eegnet", "--base", str(parts / "base"), "--clip", str(parts / "clip"),
                 "--output", str(out), "--batch-size", "2", "--max-steps", "2", "--checkpoint-every", "0",
                 "--validate-every", "0", "--validation-images", "0", "--channel-mapping", "repeat"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "pipeline" / "eeg_conditioner" / "config.json").read_text())
    assert config["arch"] == "eegnet"
    assert json.loads((out / "finetune_config.json").read_text())["encoder_arch"] == "eegnet"
    code = main(["generate", "--model", str(out), "--dataset", "folder", "--root", str(parts / "data"),
                 "--split", "test", "--limit", "1", "--num-images", "1", "--steps", "2", "--output", str(tmp_path / "g")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["items"]


@pytest.mark.parametrize("arch", ["atcnet", "msm"])
@pytest.mark.usefixtures("fresh_accelerate_state")
def test_finetune_takes_an_aligned_encoder_of_any_arch_whole(arch, parts, tmp_path):
    options = {"preset": "tiny"} if arch == "msm" else None
    aligned = AlignedEncoder(arch=arch, in_chans=8, in_times=64, in_sfreq=128.0, clip_dim=CLIP_DIM,
                             channel_index=[0, 2, 4, 6], time_pool=2, arch_options=options)
    aligned.save_pretrained(tmp_path / "aligned")
    trainer = Trainer(_cfg(parts, tmp_path / "o", encoder=str(tmp_path / "aligned")), PairList(4), None)
    trainer.setup()
    encoder = trainer.parts.conditioner.encoder
    assert encoder.time_pool == 2 and encoder.pick.tolist() == [0, 2, 4, 6]
    start = (aligned.backbone.encoder if arch == "msm" else aligned.backbone).state_dict()
    assert all(torch.equal(v, encoder.backbone.state_dict()[k]) for k, v in start.items())  # the aligned weights
    trainer.run()
    assert any(not torch.equal(v, encoder.backbone.state_dict()[k]) for k, v in start.items())  # then trained
    with pytest.raises(ConfigError, match=f"holds a '{arch}' encoder"):
        finetune(_cfg(parts, tmp_path / "o2", encoder=str(tmp_path / "aligned"), encoder_arch="shallow"), PairList(4))


def test_finetune_encoder_arch_is_checked():
    with pytest.raises(ConfigError, match="--encoder-arch must be one of"):
        FinetuneConfig(encoder_arch="resnet").validate()


@pytest.mark.parametrize("arch", ["eegnet", "resnet"])
def test_pretrain_refuses_other_archs_in_one_line(arch, tmp_path, capsys):
    code = main(["pretrain", "--corpus", str(tmp_path), "--output", str(tmp_path / "o"), "--encoder-arch", arch])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --encoder-arch"), err
    assert ("align --encoder-arch eegnet" in err[0]) if arch == "eegnet" else ("one of" in err[0])
