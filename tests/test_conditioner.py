"""EEGConditioner and the --base/--clip resolver (models/conditioner.py, models/hub.py)."""

import json

import pytest
import torch

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models import hub
from dreamdiffusion.models.conditioner import EEGConditioner, filters_head, load_encoder
from dreamdiffusion.models.eeg_encoder import EEGEncoder
from dreamdiffusion.models.encoders import EmbeddingPrior
from stageb_helpers import CLIP_DIM, CROSS, N_CHANS, N_TIMES  # parts: conftest.py


def test_shapes_and_pretrained_encoder_weights(parts):
    base = hub.load_base(str(parts / "base"))
    cond = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM, hub.unet_time_embed_dim(base.unet))
    enc = load_encoder(parts / "enc")  # MaskedSignalModel folder -> its encoder
    assert isinstance(enc, EEGEncoder)
    for (n, a), (_, b) in zip(cond.encoder.state_dict().items(), enc.state_dict().items()):
        assert torch.equal(a, b), n
    out = cond(torch.randn(3, N_CHANS, N_TIMES))
    assert out.cond.shape == (3, 77, CROSS)
    assert out.clip_embeds.shape == (3, CLIP_DIM)
    assert out.tokens.shape == (3, N_TIMES // 4, enc.config.embed_dim)
    assert cond.time_embedding(out.cond).shape == (3, base.unet.config.block_out_channels[0] * 4)
    # condition dropout swaps exactly the chosen rows for the learned null context
    dropped = cond.drop_condition(out.cond, torch.tensor([True, False, True]))
    assert torch.equal(dropped[1], out.cond[1])
    assert torch.equal(dropped[0], cond.null_cond) and torch.equal(dropped[2], cond.null_cond)


def test_time_conditioning_hook_changes_unet_only_inside(parts):
    base = hub.load_base(str(parts / "base"))
    unet = base.unet.eval()
    cond_model = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM, hub.unet_time_embed_dim(unet))
    with torch.no_grad():
        torch.nn.init.normal_(cond_model.time_cond[-1].weight)  # make the added embedding clearly non-zero
        cond = cond_model(torch.randn(2, N_CHANS, N_TIMES)).cond
        x, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 500])
        plain = unet(x, t, encoder_hidden_states=cond).sample
        with cond_model.conditioning(unet, cond):
            hooked = unet(x, t, encoder_hidden_states=cond).sample
        after = unet(x, t, encoder_hidden_states=cond).sample
    assert not torch.allclose(plain, hooked)
    assert torch.equal(plain, after)  # the hook is gone after the block


def test_channel_mismatch_is_a_config_error(parts):
    cond = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM)
    with pytest.raises(ConfigError) as err:
        cond.check_eeg(torch.randn(1, N_CHANS - 2, N_TIMES), "rec.edf")
    msg = str(err.value)
    assert msg.startswith("rec.edf: ")
    assert f"expects {N_CHANS} EEG channels, found {N_CHANS - 2}" in msg and "--channel-mapping" in msg
    with pytest.raises(ConfigError, match="windows of"):
        cond(torch.randn(1, N_CHANS, N_TIMES + 4))


def test_incompatible_encoder_folder(parts, tmp_path):
    with pytest.raises(ConfigError, match="not an EEG encoder config"):
        load_encoder(parts / "base" / "unet")  # a UNet folder is not an encoder
    bad = tmp_path / "enc"
    bad.mkdir()
    config = json.loads((parts / "enc" / "config.json").read_text())
    config["embed_dim"] = 48  # weights no longer fit the config
    (bad / "config.json").write_text(json.dumps(config))
    for f in (parts / "enc").glob("*.safetensors"):
        (bad / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ConfigError) as err:
        load_encoder(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(ConfigError, match="not found"):
        load_encoder(tmp_path / "nowhere")


def test_hub_resolution(parts, tmp_path):
    assert hub.resolve(str(parts / "base"), "base") == str(parts / "base")
    assert hub.resolve("stable-diffusion-v1-5/stable-diffusion-v1-5", "base") == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    with pytest.raises(ConfigError, match="unknown --base"):
        hub.resolve("./no/such/folder", "base")
    with pytest.raises(ConfigError, match="cannot load a Stable Diffusion"):
        hub.load_base(str(tmp_path))  # an empty folder
    clip = hub.load_clip(str(parts / "clip"))
    assert hub.clip_projection_dim(clip.model) == CLIP_DIM
    px = clip.processor(images=[__import__("PIL.Image").Image.new("RGB", (40, 30))], return_tensors="pt")["pixel_values"]
    assert clip.model(pixel_values=px).image_embeds.shape == (1, CLIP_DIM)


def test_builtin_tiny_goes_through_the_same_loaders():
    from dreamdiffusion.models import builtin

    assert hub.resolve("builtin-tiny", "base") == str(builtin.base_path())
    base = hub.load_base("builtin-tiny")
    clip = hub.load_clip("builtin-tiny")
    assert base.unet.config.cross_attention_dim == builtin.CROSS_ATTENTION_DIM
    assert hub.clip_projection_dim(clip.model) == builtin.CLIP_PROJECTION_DIM


def test_clip_pool_tokens_reads_several_token_mixtures(parts, tmp_path):
    """K > 1 mixtures: a CLIP head that can weight early and late tokens differently; K = 1 keeps the paper's
    parameter shapes (so older pipelines load unchanged); the option round-trips through save/load."""
    paper = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM)
    assert paper.config.clip_pool_tokens == 1
    assert tuple(paper.clip_pool.weight.shape[:2]) == (1, N_TIMES // 4)
    wide = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM, clip_pool_tokens=4)
    dim = wide.encoder.config.embed_dim
    assert tuple(wide.clip_pool.weight.shape[:2]) == (4, N_TIMES // 4)
    assert tuple(wide.clip_proj.weight.shape) == (CLIP_DIM, 4 * dim)
    eeg = torch.randn(2, N_CHANS, N_TIMES)
    out = wide(eeg).clip_embeds
    assert out.shape == (2, CLIP_DIM)
    wide.save_pretrained(tmp_path / "c")
    again = EEGConditioner.from_pretrained(tmp_path / "c")
    assert again.config.clip_pool_tokens == 4
    assert torch.allclose(again(eeg).clip_embeds, out)
    with pytest.raises(ConfigError):
        EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM, clip_pool_tokens=0)


def test_filters_head_replaces_the_pooled_head_and_round_trips(parts, tmp_path):
    """use_filters_head swaps the pooled head for a trained filters head (its unit prediction x the scale); the
    saved conditioner loads with that head and gives the same outputs; the context path is untouched."""
    cond = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM).eval()
    n_tokens, width = cond.token_shape()
    assert (n_tokens, width) == (N_TIMES // 4, cond.encoder.config.embed_dim)
    eeg = torch.randn(3, N_CHANS, N_TIMES)
    cond_before = cond(eeg).cond
    torch.manual_seed(1)
    head = filters_head(width, n_tokens, CLIP_DIM, filters=4, bins=8).eval()
    cond.use_filters_head(head, scale=2.5)
    assert cond.clip_pool is None and cond.clip_proj is None
    assert [type(m).__name__ for m in cond.clip_head_modules()] == ["AlignedEncoder"]
    out = cond(eeg)
    tokens = cond.encoder(eeg)
    expected = torch.nn.functional.normalize(head(tokens.transpose(1, 2)), dim=-1) * 2.5
    assert torch.allclose(out.clip_embeds, expected, atol=1e-6)
    assert torch.allclose(out.clip_embeds.norm(dim=-1), torch.full((3,), 2.5), atol=1e-5)
    assert torch.equal(out.cond, cond_before)  # no clip_context: the context does not read the head
    cond.save_pretrained(tmp_path / "c")
    again = EEGConditioner.from_pretrained(tmp_path / "c").eval()
    assert (again.config.clip_head, again.config.clip_head_filters, again.config.clip_head_bins) == ("filters", 4, 8)
    assert again.clip_pool is None and torch.allclose(again(eeg).clip_embeds, out.clip_embeds, atol=1e-6)
    with pytest.raises(ConfigError, match="CLIP head"):
        EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM, clip_head="mlp")
    with pytest.raises(ConfigError, match="clip_head_bins"):
        filters_head(width, n_tokens, CLIP_DIM, filters=4, bins=n_tokens + 1)


def test_eeg_head_reads_the_window_and_round_trips(parts, tmp_path):
    """use_filters_head(kind="eeg"): the CLIP prediction comes from the EEG window (channels mixed, samples binned),
    not the tokens; the context still comes from the encoder; the saved conditioner loads with the same head."""
    cond = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM).eval()
    assert cond.head_input_shape("eeg") == (N_CHANS, N_TIMES)
    eeg = torch.randn(3, N_CHANS, N_TIMES)
    cond_before = cond(eeg).cond
    torch.manual_seed(2)
    head = filters_head(N_CHANS, N_TIMES, CLIP_DIM, filters=2, bins=4).eval()
    cond.use_filters_head(head, scale=1.5, kind="eeg")
    out = cond(eeg)
    expected = torch.nn.functional.normalize(head(eeg), dim=-1) * 1.5
    assert torch.allclose(out.clip_embeds, expected, atol=1e-6)
    assert torch.equal(out.cond, cond_before)
    tokens = cond.encoder(eeg)
    with pytest.raises(ConfigError, match="reads the EEG window"):
        cond.clip_embeds(tokens)
    # two windows with the same tokens' shape but another signal: the prediction follows the window
    assert not torch.allclose(cond(eeg.flip(0)).clip_embeds[0], out.clip_embeds[0])
    cond.save_pretrained(tmp_path / "c")
    again = EEGConditioner.from_pretrained(tmp_path / "c").eval()
    assert (again.config.clip_head, again.config.clip_head_filters, again.config.clip_head_bins) == ("eeg", 2, 4)
    assert torch.allclose(again(eeg).clip_embeds, out.clip_embeds, atol=1e-6)
    with pytest.raises(ConfigError, match="'filters' or 'eeg'"):
        cond.use_filters_head(head, scale=1.0, kind="pool")


def test_fitted_head_prior_reads_the_heads_prediction_and_round_trips(parts, tmp_path):
    """use_filters_head(prior=...): the head's scaled prediction goes through the prior, whose output direction is
    given the same length; the prior is part of the head (frozen with it) and loads with the conditioner."""
    cond = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM).eval()
    eeg = torch.randn(3, N_CHANS, N_TIMES)
    torch.manual_seed(3)
    head = filters_head(N_CHANS, N_TIMES, CLIP_DIM, filters=2, bins=4).eval()
    prior = EmbeddingPrior(CLIP_DIM, 16)
    torch.nn.init.normal_(prior.net[-1].weight, std=0.5)  # not the identity it starts as
    cond.use_filters_head(head, scale=2.0, kind="eeg", prior=prior)
    assert cond.config.clip_head_prior == 16 and cond.clip_prior in cond.clip_head_modules()
    out = cond(eeg).clip_embeds
    plain = torch.nn.functional.normalize(head(eeg), dim=-1) * 2.0
    with torch.no_grad():
        expected = torch.nn.functional.normalize(prior(plain), dim=-1) * 2.0
    assert torch.allclose(out, expected, atol=1e-5) and not torch.allclose(out, plain, atol=1e-3)
    assert torch.allclose(out.norm(dim=-1), torch.full((3,), 2.0), atol=1e-5)
    cond.save_pretrained(tmp_path / "c")
    again = EEGConditioner.from_pretrained(tmp_path / "c").eval()
    assert again.config.clip_head_prior == 16 and torch.allclose(again(eeg).clip_embeds, out, atol=1e-5)
    cond.use_filters_head(head, scale=2.0, kind="eeg")  # refitted without one: the prior goes
    assert cond.clip_prior is None and cond.config.clip_head_prior == 0
    assert torch.allclose(cond(eeg).clip_embeds, plain, atol=1e-6)


def test_clip_context_adds_the_clip_prediction_to_every_context_token(parts, tmp_path):
    torch.manual_seed(0)
    plain = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM)
    torch.manual_seed(0)
    wide = EEGConditioner.from_encoder(parts / "enc", CROSS, CLIP_DIM, clip_context=True)
    eeg = torch.randn(2, N_CHANS, N_TIMES)
    with torch.no_grad():
        assert torch.equal(wide(eeg).cond, plain(eeg).cond)  # starts as the paper's context (the map is zero)
        torch.nn.init.normal_(wide.clip_context_proj.weight, std=0.1)
        out = wide(eeg)
        added = wide.clip_context_proj(out.clip_embeds).view(2, 77, CROSS)
        assert torch.allclose(out.cond, plain(eeg).cond + added, atol=1e-6)
    assert plain.clip_context_proj is None
    wide.save_pretrained(tmp_path / "c")
    back = EEGConditioner.from_pretrained(tmp_path / "c")
    with torch.no_grad():
        assert back.config.clip_context and torch.allclose(back(eeg).cond, out.cond, atol=1e-6)
