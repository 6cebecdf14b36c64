import pytest
import torch

from dreamdiffusion.models.eeg_encoder import PRESETS, EEGEncoder, MaskedSignalModel, count_parameters, random_masking


def test_paper_preset_matches_reference_size():
    model = MaskedSignalModel.from_preset("paper")
    n_enc = count_parameters(model.encoder)
    # reference code: 24 x 6.30M + 0.53M patch embedding ~ 151.8M encoder, ~13.4M decoder
    assert 151.0e6 < n_enc < 152.5e6
    assert 13.0e6 < count_parameters(model) - n_enc < 13.8e6


def test_masking_keeps_ratio_and_restores_order():
    x = torch.arange(2 * 128, dtype=torch.float32).view(2, 128, 1).expand(2, 128, 3).contiguous()
    visible, mask, ids_restore = random_masking(x, 0.75, torch.Generator().manual_seed(0))
    assert visible.shape == (2, 32, 3)
    assert mask.sum(1).tolist() == [96.0, 96.0]
    # the visible tokens are exactly those the mask marks 0
    for b in range(2):
        kept = set(visible[b, :, 0].long().tolist())
        assert kept == set(x[b, mask[b] == 0, 0].long().tolist())


def test_loss_covers_masked_tokens_only():
    torch.manual_seed(0)
    model = MaskedSignalModel.from_preset("tiny").eval()
    eeg = torch.randn(2, 128, 512)
    g = torch.Generator().manual_seed(1)
    loss, pred, mask = model(eeg, mask_ratio=0.5, generator=g)
    # Replacing the prediction on visible tokens by anything leaves the loss unchanged.
    pred2 = pred.clone()
    pred2[mask == 0] = 1e3
    assert torch.allclose(model.forward_loss(eeg, pred2, mask), loss)
    pred3 = pred.clone()
    pred3[mask == 1] += 1.0
    assert not torch.allclose(model.forward_loss(eeg, pred3, mask), loss)


def test_visible_loss_weight_adds_the_visible_tokens_error_at_its_weight():
    torch.manual_seed(0)
    eeg = torch.randn(2, 4, 32)
    plain = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=32)
    weighted = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=32, visible_loss_weight=0.5)
    mask = (torch.arange(8) % 2).float().expand(2, 8)  # tokens 1, 3, 5, 7 masked
    perfect = plain.patchify(eeg)
    off_visible = perfect.clone()
    off_visible[mask == 0] += 2.0  # every visible value off by 2: squared error 4 there, nothing on masked tokens
    assert plain.forward_loss(eeg, off_visible, mask) < 1e-10  # the paper's loss never looks at them
    assert torch.allclose(weighted.forward_loss(eeg, off_visible, mask), torch.tensor(0.5 * 4.0))
    off_masked = perfect.clone()
    off_masked[mask == 1] += 1.0
    assert torch.allclose(weighted.forward_loss(eeg, off_masked, mask), plain.forward_loss(eeg, off_masked, mask))
    assert torch.allclose(plain.forward_loss(eeg, off_masked, mask), torch.tensor(1.0))


def test_patchify_roundtrip():
    model = MaskedSignalModel.from_preset("tiny")
    eeg = torch.randn(3, 128, 512)
    assert torch.equal(model.unpatchify(model.patchify(eeg)), eeg)


def test_encoder_save_load_bit_exact(tmp_path):
    enc = EEGEncoder(**{k: PRESETS["tiny"][k] for k in ("embed_dim", "depth", "num_heads", "mlp_ratio")})
    enc.save_pretrained(tmp_path / "enc")
    files = {p.name for p in (tmp_path / "enc").iterdir()}
    assert "config.json" in files and any(f.endswith(".safetensors") for f in files)
    back = EEGEncoder.from_pretrained(tmp_path / "enc")
    for (k, a), (_, b) in zip(enc.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    x = torch.randn(2, 128, 512)
    assert torch.equal(enc.eval()(x), back.eval()(x))


def test_span_masking_hides_whole_runs_and_keeps_the_ratio():
    x = torch.randn(3, 64, 8)
    visible, mask, ids_restore = random_masking(x, 0.75, torch.Generator().manual_seed(1), span=8)
    assert visible.shape == (3, 16, 8) and mask.sum(1).tolist() == [48.0] * 3
    runs = mask.view(3, 8, 8)  # 64 tokens = 8 runs of 8: each run all masked or all visible
    assert ((runs.sum(-1) == 0) | (runs.sum(-1) == 8)).all()
    m = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=64, mask_span=4)
    _loss, _pred, mask = m(torch.randn(2, 4, 64), generator=torch.Generator().manual_seed(0))
    assert ((mask.view(2, 4, 4).sum(-1) % 4) == 0).all()


def test_predicted_stats_put_a_normalised_target_back_in_input_units():
    m = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=32, norm_target=True, predict_stats=True)
    eeg = 3.0 * torch.randn(2, 4, 32) + 1.0
    loss, pred, mask = m(eeg, generator=torch.Generator().manual_seed(0))
    assert pred.shape == (2, 8, 4 * 4 + 2) and torch.isfinite(loss)
    target = m.patchify(eeg)
    mean, std = m.token_stats(target)
    perfect = torch.cat([(target - mean) / std, mean, std.log()], dim=-1)
    assert m.forward_loss(eeg, perfect, mask) < 1e-8
    assert torch.allclose(m.reconstruct(eeg, perfect), eeg, atol=1e-4)
    # the reconstruction reads the predicted statistics, not the true ones
    wrong = perfect.clone()
    wrong[..., -2] += 1.0
    assert torch.allclose(m.reconstruct(eeg, wrong), eeg + 1.0, atol=1e-4)
    assert m.forward_loss(eeg, wrong, mask) > 0.4


def test_alibi_bias_prefers_neighbours_and_spares_cls():
    from dreamdiffusion.models.eeg_encoder import alibi_bias

    bias = alibi_bias(torch.tensor([[0, 3, 4]]), num_heads=4)  # [1, 4, 4, 4] with the cls row/column
    assert bias.shape == (1, 4, 4, 4) and (bias[:, :, 0, :] == 0).all() and (bias[:, :, :, 0] == 0).all()
    assert bias[0, 0, 1, 2] == -3.0 and bias[0, 0, 2, 3] == -1.0 and bias[0, 1, 1, 2] == -0.75
    assert (bias[0, :, 2, 2] == 0).all() and (bias[0, 3] > bias[0, 0] - 1e-9).all()  # later heads look further


def test_alibi_model_masks_decodes_and_round_trips(tmp_path):
    m = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=64, alibi=True)
    eeg = torch.randn(2, 4, 64)
    loss, pred, mask = m(eeg, generator=torch.Generator().manual_seed(0))
    assert pred.shape == (2, 16, 16) and torch.isfinite(loss)
    # the encoder is told where the visible tokens sit: moving a far token changes a visible one's output
    enc = m.encoder.eval()
    with torch.no_grad():
        tokens = enc.embed(eeg)
        a = enc.encode_tokens(tokens[:, :2], torch.tensor([[0, 1]] * 2))
        b = enc.encode_tokens(tokens[:, :2], torch.tensor([[0, 9]] * 2))
        plain = EEGEncoder(**{**{k: v for k, v in enc.config.items() if not k.startswith("_")}, "alibi": False})
        plain.load_state_dict(enc.state_dict())
        assert not torch.allclose(a, b) and not torch.allclose(plain(eeg), enc(eeg))  # the bias is what differs
    enc.save_pretrained(tmp_path / "enc")
    again = EEGEncoder.from_pretrained(tmp_path / "enc")
    assert again.config.alibi and torch.allclose(again(eeg), enc(eeg))


def test_encoder_folder_written_before_alibi_still_loads(tmp_path):
    import json

    from dreamdiffusion.models.conditioner import EEGConditioner, load_encoder

    enc = EEGEncoder(n_chans=4, n_times=32, patch_size=4, embed_dim=16, depth=1, num_heads=2, mlp_ratio=2.0)
    enc.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    del cfg["alibi"]  # as written by an older version
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    old = load_encoder(tmp_path)
    assert old.config.alibi is False
    cond = EEGConditioner.from_encoder(old, cross_attention_dim=8, clip_dim=8)
    assert cond.config.alibi is False and torch.equal(cond.encoder.patch_embed.weight, enc.patch_embed.weight)


def test_orthogonal_patch_start_reads_orthonormal_spatial_filters_of_the_patch_mean(tmp_path):
    import pytest

    from dreamdiffusion.evaluation.probe import random_encoder_like
    from dreamdiffusion.models.eeg_encoder import init_patch_embed

    m = MaskedSignalModel.from_preset("tiny", n_chans=128, n_times=64, patch_init="orthogonal")
    w = m.encoder.patch_embed.weight.detach()  # [64, 128, 4]
    assert torch.equal(w[:, :, :1].expand_as(w), w)  # every sample of a patch read alike: the patch mean
    flat = w.reshape(64, -1)
    assert torch.allclose(flat @ flat.T, torch.eye(64), atol=1e-5)  # orthonormal rows, each of unit length
    wide = torch.empty(16, 4, 2)  # wider than the channels: the filters' columns are orthonormal instead
    init_patch_embed(wide, "orthogonal")
    spatial = wide.sum(-1) / 2 ** 0.5
    assert torch.allclose(spatial.T @ spatial, torch.eye(4), atol=1e-5)
    # the paper's xavier start reads each sample on its own weights
    xav = MaskedSignalModel.from_preset("tiny", n_chans=128, n_times=64).encoder.patch_embed.weight
    assert not torch.allclose(xav[:, :, 0], xav[:, :, 1])
    with pytest.raises(ValueError, match="patch_init"):
        init_patch_embed(wide, "eye")
    # the option is part of the encoder's config: saved, loaded, and kept by the probe's random twin
    m.encoder.save_pretrained(tmp_path / "enc")
    again = EEGEncoder.from_pretrained(tmp_path / "enc")
    assert again.config.patch_init == "orthogonal" and torch.equal(again.patch_embed.weight, w)
    twin = random_encoder_like(again, seed=1).patch_embed.weight.detach().reshape(64, -1)
    assert torch.allclose(twin @ twin.T, torch.eye(64), atol=1e-5) and not torch.allclose(twin, flat)


def test_zero_block_start_is_the_identity_and_pca_start_reads_given_filters(tmp_path):
    import pytest

    from dreamdiffusion.models.eeg_encoder import init_blocks, init_patch_embed

    torch.manual_seed(0)
    enc = EEGEncoder(n_chans=8, n_times=32, patch_size=4, embed_dim=16, depth=2, num_heads=4, mlp_ratio=2.0,
                     alibi=True, block_init="zero")
    x = torch.randn(3, 8, 32)
    with torch.no_grad():
        # every block adds zero: the tokens are the final LayerNorm of the positioned patch embedding
        assert torch.allclose(enc(x), enc.norm(enc.embed(x)), atol=1e-6)
    paper = EEGEncoder(n_chans=8, n_times=32, patch_size=4, embed_dim=16, depth=2, num_heads=4, mlp_ratio=2.0)
    with torch.no_grad():
        assert not torch.allclose(paper(x), paper.norm(paper.embed(x)), atol=1e-3)  # the xavier blocks mix
    # a zero branch still learns: its weight gets a gradient
    enc(x).square().sum().backward()
    assert enc.blocks[0].mlp[-1].weight.grad.abs().sum() > 0 and enc.blocks[0].attn.proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="block_init"):
        init_blocks(enc.blocks, "ones")
    enc.save_pretrained(tmp_path / "enc")
    assert EEGEncoder.from_pretrained(tmp_path / "enc").config.block_init == "zero"
    # pca: the patch mean read through the filters given; without filters (built from a config) orthogonal
    filters = torch.randn(16, 8)
    w = torch.empty(16, 8, 4)
    init_patch_embed(w, "pca", filters)
    assert torch.allclose(w, filters[:, :, None].expand(16, 8, 4) / 2.0)
    with pytest.raises(ValueError, match="spatial filters"):
        init_patch_embed(w, "pca", torch.randn(8, 8))
    init_patch_embed(w, "pca")
    spatial = w.sum(-1) / 2.0  # the filters (the weight is filter / sqrt(4) on each of the 4 samples)
    assert torch.allclose(spatial.T @ spatial, torch.eye(8), atol=1e-5)  # wider than the channels: orthonormal columns


def test_an_encoder_without_its_final_norm_round_trips_through_the_conditioner(tmp_path):
    from dreamdiffusion.models.conditioner import EEGConditioner, load_encoder

    torch.manual_seed(0)
    m = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=32, final_norm=False, block_init="zero")
    assert isinstance(m.encoder.norm, torch.nn.Identity)
    eeg = torch.randn(2, 4, 32)
    with torch.no_grad():
        # identity blocks and no norm: the tokens are the positioned patch embedding, unscaled
        assert torch.allclose(m.encoder.eval()(eeg), m.encoder.embed(eeg), atol=1e-6)
    m.save_pretrained(tmp_path / "msm")
    enc = load_encoder(tmp_path / "msm")
    assert enc.config.final_norm is False and isinstance(enc.norm, torch.nn.Identity)
    cond = EEGConditioner.from_encoder(enc, cross_attention_dim=16, clip_dim=8, time_embed_dim=None)
    assert cond.config.final_norm is False
    with torch.no_grad():
        assert torch.equal(cond.encoder.eval()(eeg), enc.eval()(eeg))
    # a folder written before the option (no final_norm key) loads with the paper's norm
    import json

    EEGEncoder(n_chans=4, n_times=32, embed_dim=8, depth=1, num_heads=2).save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["final_norm"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert isinstance(load_encoder(tmp_path / "old").norm, torch.nn.LayerNorm)


def test_the_affine_norm_scales_the_tokens_to_unit_spread_without_losing_any_linear_read_out(tmp_path):
    """final_norm "affine": identity until calibrated; then the calibration EEG's tokens are centred per feature at
    unit spread overall, each token an affine map of the norm-free one (one scale: the relative sizes kept); it
    round-trips through save/load, and an encoder that had a LayerNorm gets a fresh affine map, not the LN's weights."""
    from dreamdiffusion.models.conditioner import EEGConditioner
    from dreamdiffusion.models.eeg_encoder import TokenAffine

    torch.manual_seed(0)
    free = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=32, final_norm=False).encoder.eval()
    cond = EEGConditioner.from_encoder(free, cross_attention_dim=16, clip_dim=8, final_norm="affine")
    enc = cond.encoder.eval()
    assert cond.config.final_norm == "affine" and isinstance(enc.norm, TokenAffine)
    eeg = 3.0 * torch.randn(16, 4, 32) + 1.0
    with torch.no_grad():
        raw = free(eeg)
        assert torch.equal(enc(eeg), raw)  # the identity before calibration
        record = enc.calibrate_norm(eeg)
        out = enc(eeg)
    centred = raw - raw.reshape(-1, raw.shape[-1]).mean(0)
    assert record["spread"] == pytest.approx(float(centred.std()), rel=1e-5)
    flat = out.reshape(-1, out.shape[-1])
    assert torch.allclose(flat.mean(0), torch.zeros(out.shape[-1]), atol=1e-4)
    assert float(flat.std()) == pytest.approx(1.0, abs=1e-4)
    # one scale for every feature: out = (raw - feature mean) / overall spread
    expected = centred / centred.std()
    assert torch.allclose(out, expected, atol=1e-4)
    cond.save_pretrained(tmp_path / "cond")
    back = EEGConditioner.from_pretrained(tmp_path / "cond").eval()
    with torch.no_grad():
        assert isinstance(back.encoder.norm, TokenAffine) and torch.equal(back.encoder(eeg), out)
    normed = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=32).encoder
    with torch.no_grad():
        normed.norm.weight.fill_(2.0)
    fresh = EEGConditioner.from_encoder(normed, cross_attention_dim=16, clip_dim=8, final_norm="affine").encoder
    assert torch.equal(fresh.norm.weight, torch.ones(fresh.config.embed_dim))
    with pytest.raises(ValueError, match="affine"):
        free.calibrate_norm(eeg)  # a norm-free encoder has nothing to calibrate
    with pytest.raises(ValueError, match="final_norm"):
        EEGEncoder(n_chans=4, n_times=32, embed_dim=8, depth=1, num_heads=2, final_norm="batchnorm")


def test_stage_b_can_give_a_norm_free_encoder_a_fresh_layernorm_and_nothing_else_changes():
    from dreamdiffusion.models.conditioner import EEGConditioner

    torch.manual_seed(0)
    enc = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=32, final_norm=False).encoder.eval()
    cond = EEGConditioner.from_encoder(enc, cross_attention_dim=16, clip_dim=8, time_embed_dim=None, final_norm=True)
    assert cond.config.final_norm is True and isinstance(cond.encoder.norm, torch.nn.LayerNorm)
    assert torch.equal(cond.encoder.norm.weight, torch.ones(enc.config.embed_dim))
    assert torch.equal(cond.encoder.norm.bias, torch.zeros(enc.config.embed_dim))
    eeg = torch.randn(2, 4, 32)
    with torch.no_grad():  # the same tokens, normalised: every trained weight came across
        expected = torch.nn.functional.layer_norm(enc(eeg), (enc.config.embed_dim,), eps=1e-6)
        assert torch.allclose(cond.encoder.eval()(eeg), expected, atol=1e-5)
    # an encoder with its norm keeps its own (trained) norm; False drops it
    normed = MaskedSignalModel.from_preset("tiny", n_chans=4, n_times=32).encoder
    with torch.no_grad():
        normed.norm.weight.fill_(2.0)
    kept = EEGConditioner.from_encoder(normed, cross_attention_dim=16, clip_dim=8, final_norm=True)
    assert torch.equal(kept.encoder.norm.weight, normed.norm.weight)
    dropped = EEGConditioner.from_encoder(normed, cross_attention_dim=16, clip_dim=8, final_norm=False)
    assert isinstance(dropped.encoder.norm, torch.nn.Identity)
