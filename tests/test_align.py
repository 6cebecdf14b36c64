"""Contrastive EEG-CLIP alignment: the loss, the encoders, the channel sets and `dreamdiffusion align` end to end."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dreamdiffusion.cli import main
from dreamdiffusion.conditioning import aligned_preprocessing
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.data import synthetic
from dreamdiffusion.data.channel_sets import CHANNEL_SETS, resolve_channels
from dreamdiffusion.models.conditioner import load_encoder
from dreamdiffusion.models.encoders import ARCHS, AlignedEncoder, load_aligned_encoder
from dreamdiffusion.training.align import AlignConfig, adaptive_levels, align, ridge_start
from dreamdiffusion.training.contrastive import info_nce

# ------------------------------------------------------------------------------------------------- the loss

def _unit(n, d=64, seed=0):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_info_nce_identical_pairs_reach_the_minimum_and_unrelated_ones_log_batch():
    img = _unit(32)
    assert float(info_nce(img.clone(), img, 100.0)) < 1e-3  # each EEG matches its own image only
    unrelated = float(info_nce(_unit(32, seed=1), img, 1.0))  # at temperature 1, random pairs ~ chance
    assert abs(unrelated - math.log(32)) < 0.1
    shuffled = float(info_nce(img[torch.randperm(32, generator=torch.Generator().manual_seed(2))], img, 100.0))
    assert shuffled > math.log(32)  # confidently wrong is worse than chance


def test_repeated_trials_are_positives_never_negatives():
    ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    img = _unit(4)[ids]  # two trials per image: identical targets
    eeg = img.clone()
    # Without ids, the other trial's (identical) image is a negative: the loss cannot go below log(2).
    assert abs(float(info_nce(eeg, img, 100.0)) - math.log(2)) < 1e-3
    assert float(info_nce(eeg, img, 100.0, image_ids=ids)) < 1e-3
    # The gradient never pushes an EEG away from its image's other trial.
    e = eeg.clone().requires_grad_(True)
    info_nce(e, img, 10.0, image_ids=ids).backward()
    assert torch.all((e.grad * img).sum(-1) <= 1e-6)  # descent direction (-grad) points toward the own image
    with pytest.raises(ValueError):
        info_nce(eeg, img, 1.0, image_ids=ids[:3])


def test_the_within_class_term_counts_only_the_own_class_as_negatives():
    img = _unit(8)
    classes = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    plain = float(info_nce(img.clone(), img, 1.0))
    # every class alone in the batch: no same-class negative, the term adds exactly 0
    assert float(info_nce(img.clone(), img, 1.0, class_ids=torch.arange(8), within_class_weight=1.0)) == \
        pytest.approx(plain)
    # an EEG that knows its class but not which image within it (the class centre, equally far from each of the
    # class's images): the within-class term sits at chance, log 4 among the own class's four images
    basis = torch.linalg.qr(torch.randn(64, 64, generator=torch.Generator().manual_seed(3)))[0].T
    centres, offsets = basis[:2], basis[2:10]
    images = F.normalize(centres[classes] + offsets, dim=-1)
    lookup = float(info_nce(centres[classes], images, 100.0))
    both = float(info_nce(centres[classes], images, 100.0, class_ids=classes, within_class_weight=1.0))
    assert both - lookup == pytest.approx(math.log(4), abs=1e-4)
    # a perfect EEG: both terms at their minimum
    assert float(info_nce(img.clone(), img, 100.0, class_ids=classes, within_class_weight=1.0)) < 1e-3
    with pytest.raises(ValueError, match="class_ids"):
        info_nce(img, img, 1.0, within_class_weight=1.0)


def test_adaptive_blur_levels_follow_the_match():
    sims, levels = np.zeros(40), np.ones(40, dtype=np.int64)
    diag = np.r_[np.zeros(38), 5.0, -5.0]
    adaptive_levels(diag, sims, np.arange(40), levels)
    assert levels[38] == 0 and levels[39] == 2 and set(levels[:38]) == {1}  # well matched: less blur


# ---------------------------------------------------------------------------------------------- the encoders

@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_forward_save_load_identical(arch, tmp_path):
    torch.manual_seed(0)
    options = {"preset": "tiny"} if arch == "msm" else None
    model = AlignedEncoder(arch=arch, in_chans=20, in_times=128, in_sfreq=256.0, clip_dim=16,
                           channel_index=[0, 3, 5, 7, 11, 19], time_pool=2, arch_options=options).eval()
    eeg = torch.randn(3, 20, 128)
    out = model(eeg)
    assert out.shape == (3, 16) and torch.isfinite(out).all()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    again = load_aligned_encoder(tmp_path)
    assert torch.equal(again(eeg), out)
    with pytest.raises(ConfigError):
        model(torch.randn(3, 19, 128))  # the window the model was built for, or a clear error


def test_aligned_msm_feeds_the_papers_conditioner_and_others_do_not(tmp_path):
    msm = AlignedEncoder(arch="msm", in_chans=8, in_times=64, clip_dim=16, arch_options={"preset": "tiny"})
    msm.save_pretrained(tmp_path / "msm")
    encoder = load_encoder(tmp_path / "msm")
    assert torch.equal(encoder.patch_embed.weight, msm.backbone.encoder.patch_embed.weight)
    AlignedEncoder(arch="linear", in_chans=8, in_times=64, clip_dim=16).save_pretrained(tmp_path / "lin")
    with pytest.raises(ConfigError, match="msm"):
        load_encoder(tmp_path / "lin")
    with pytest.raises(ConfigError):
        load_aligned_encoder(tmp_path)  # not a model folder


def test_channel_sets_by_name_and_by_position():
    names = ["Fp1", "O1", "oz", "O2", "Cz"]
    assert resolve_channels("occipital", names) == ([1, 2, 3], ["O1", "oz", "O2"])
    assert resolve_channels("Cz, O2", names)[0] == [4, 3]
    with pytest.raises(ConfigError, match="PO7"):
        resolve_channels("PO7", names)
    biosemi, _ = synthetic.montage_positions()
    index, picked = resolve_channels("ubp17", biosemi, "biosemi128")
    assert len(set(index)) == 17 and len(picked) == len(CHANNEL_SETS["ubp17"])
    # posterior channels: all on the back half of the head
    _, xyz = synthetic.montage_positions()
    assert (xyz[index, 1] < 0).all()


# -------------------------------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return synthetic.build_benchmark(tmp_path_factory.mktemp("ab") / "bench", seed=0, n_subjects=2,
                                     n_corpus_windows=0, n_images=80, trials_per_image=2)


def test_align_end_to_end(bench, tmp_path):
    out = align(AlignConfig(output=str(tmp_path / "enc"), dataset="synthetic", dataset_options={"root": str(bench)},
                            clip="builtin-tiny", encoder_arch="linear", channels="ubp17", time_pool=8, batch_size=16,
                            max_steps=6, warmup_steps=1, validate_every=3, target_blur=0.05,
                            target_blur_adaptive=True, target_views=2, report_test=True, baseline=True, seed=3,
                            trial_mix=0.5, cosine_weight=1.0))
    summary = json.loads((out / "align_summary.json").read_text())
    val = synthetic.SyntheticPairs(bench, "val")
    assert summary["val"]["n_way"] == len(set(val.trial_image[val.indices]))  # distinct val images compete
    assert summary["val"]["n_eeg"] == len(val) and summary["selected_step"] in (3, 6)
    assert 0 <= summary["val"]["top1"] <= summary["val"]["top5"] <= 1 and summary["test"]["n_way"] > 2
    ridge = summary["baseline_ridge_clip"]  # the ridge baseline beside, on the same EEGs and candidates
    assert ridge["val"]["n_way"] == summary["val"]["n_way"] and ridge["test"]["n_way"] == summary["test"]["n_way"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 7)) and "val_top1" in records[2]
    model = load_aligned_encoder(out)
    assert model.config.channel_names and len(model.config.channel_index) == 17
    pre = aligned_preprocessing(out)  # how a recording becomes its input, for the pipelines built on it
    assert pre["dataset"] == "synthetic" and pre["channel_mapping"] == "montage" and pre["montage"] == "biosemi128"
    emb = model.embed(torch.as_tensor(val[0]["eeg"])[None])
    assert abs(float(emb.norm()) - model.config.target_scale) < 1e-4  # CLIP's own length, for an IP-Adapter
    with pytest.raises(ConfigError, match="earlier align run"):
        align(AlignConfig(output=str(out), dataset="synthetic", dataset_options={"root": str(bench)},
                          clip="builtin-tiny", encoder_arch="linear", max_steps=1))


@pytest.mark.parametrize("filters", [0, 2])
def test_linear_start_is_the_given_affine_map_then_layernorm(filters):
    # a map of channel rank 2: with 2 spatial filters the factorisation over the channels is exact
    g = torch.Generator().manual_seed(0)
    chans, times, dim = 6, 4, 5
    w = torch.einsum("kc,kdt->dct", torch.randn(2, chans, generator=g), torch.randn(2, dim, times, generator=g))
    b = torch.randn(dim, generator=g)
    model = AlignedEncoder(arch="linear", in_chans=chans, in_times=times, clip_dim=dim,
                           arch_options={"spatial_filters": filters} if filters else None).eval()
    model.start_from_linear_map(w.reshape(dim, -1), b)
    x = torch.randn(7, chans, times, generator=g)
    expected = F.layer_norm(x.flatten(1) @ w.reshape(dim, -1).T + b, (dim,))
    torch.testing.assert_close(model.forward_prepared(x), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ConfigError, match="linear arch"):
        AlignedEncoder(arch="eegnet", in_chans=chans, in_times=64, clip_dim=dim).start_from_linear_map(w, b)


def test_ridge_start_fits_the_train_targets_before_any_step():
    # targets a linear function of the EEG (+ noise): the ridge start already predicts their direction
    g = torch.Generator().manual_seed(1)
    x = torch.randn(400, 8, 4, generator=g)
    ids = np.repeat(np.arange(200), 2)
    image_side = torch.randn(200, 32, generator=g)  # what each image's pair of trials shares
    x = 0.2 * x + torch.einsum("nd,dct->nct", image_side[ids], torch.randn(32, 8, 4, generator=g))
    targets = F.normalize(image_side @ torch.randn(32, 16, generator=g), dim=-1)[None]  # [1, M, D]
    model = AlignedEncoder(arch="linear", in_chans=8, in_times=4, clip_dim=16).eval()
    centred = targets[0][ids] - targets[0][ids].mean(dim=1, keepdim=True)
    with torch.no_grad():
        before = F.cosine_similarity(model.forward_prepared(x), centred).mean()
        record = ridge_start(model, (x, ids), targets)
        after = F.cosine_similarity(model.forward_prepared(x), centred).mean()
    assert record["alpha"] > 0 and float(after) > 0.9 > abs(float(before))


def test_align_init_ridge_runs_and_is_recorded_and_refused_off_the_linear_arch(bench, tmp_path):
    common = dict(dataset="synthetic", dataset_options={"root": str(bench)}, clip="builtin-tiny", time_pool=32,
                  batch_size=16, max_steps=2, warmup_steps=1, validate_every=2, select="last")
    out = align(AlignConfig(output=str(tmp_path / "r"), encoder_arch="linear", spatial_filters=4, init_ridge=True,
                            **common))
    summary = json.loads((out / "align_summary.json").read_text())
    assert summary["init_ridge"]["alpha"] > 0 and summary["selected_step"] == 2
    assert json.loads((out / "align_config.json").read_text())["init_ridge"] is True
    plain = align(AlignConfig(output=str(tmp_path / "p"), encoder_arch="linear", **common))
    assert json.loads((plain / "align_summary.json").read_text())["init_ridge"] is None  # off by default
    with pytest.raises(ConfigError, match="init-ridge"):
        AlignConfig(encoder_arch="eegnet", init_ridge=True).validate()


def test_align_cli_bad_arch_is_one_line(bench, tmp_path, capsys):
    code = main(["align", "--dataset", "synthetic", "--root", str(bench), "--clip", "builtin-tiny",
                 "--output", str(tmp_path / "x"), "--encoder-arch", "resnet"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "encoder-arch" in err[0]


# ------------------------------------------------------------------------------------ THINGS-EEG2 as the field runs it

@pytest.fixture(scope="module")
def things(tmp_path_factory):
    import shutil

    from pairs_fixtures import write_things

    t = write_things(tmp_path_factory.mktemp("things") / "things", n_concepts=4, per_concept=5, n_test=5)
    for s in (2, 3):  # more subjects: the same images, their own EEG
        shutil.copytree(t.root / "sub-01", t.root / f"sub-{s:02d}")
        for name in ("preprocessed_eeg_training.npy", "preprocessed_eeg_test.npy"):
            d = np.load(t.root / f"sub-{s:02d}" / name, allow_pickle=True).item()
            d["preprocessed_eeg_data"] = d["preprocessed_eeg_data"] + s
            np.save(t.root / f"sub-{s:02d}" / name, d, allow_pickle=True)
    return t


def test_leave_one_subject_out_never_trains_on_the_left_out_subject(things, tmp_path):
    from dreamdiffusion.data.pairs import open_paired_dataset

    opts = {"root": str(things.root), "leave_out_subject": 2, "n_chans": 17, "n_times": 64}
    seen = {split: {open_paired_dataset("things-eeg2", split, **opts)[i]["subject"]
                    for i in range(len(open_paired_dataset("things-eeg2", split, **opts)))}
            for split in ("train", "val", "test")}
    assert seen == {"train": {1, 3}, "val": {1, 3}, "test": {2}}
    test = open_paired_dataset("things-eeg2", "test", **opts, average_repetitions=False)
    assert len(test) == 5  # test repetitions are always averaged: one EEG per test image
    intra = open_paired_dataset("things-eeg2", "train", root=str(things.root), subjects=[3], n_chans=17, n_times=64)
    assert {intra[i]["subject"] for i in range(len(intra))} == {3}
    # align on it: the encoder trains on subjects 1 and 3 only and is tested 5-way on subject 2's averaged EEG
    out = align(AlignConfig(output=str(tmp_path / "loso"), dataset="things-eeg2", clip="builtin-tiny",
                            dataset_options={**opts, "average_repetitions": False}, encoder_arch="linear",
                            channels="O1,Oz,O2", batch_size=8, max_steps=2, validate_every=1, report_test=True))
    summary = json.loads((out / "align_summary.json").read_text())
    assert summary["train_trials"] == 2 * 18 * 4  # 2 subjects x 18 train images x 4 repetitions
    assert summary["test"]["n_way"] == 5 and summary["test"]["n_eeg"] == 5
    # evaluate prints the field's table (published rows, then this method: intra-subject | leave-one-subject-out)
    intra = align(AlignConfig(output=str(tmp_path / "intra"), dataset="things-eeg2", clip="builtin-tiny",
                              dataset_options={**opts, "average_repetitions": False, "leave_out_subject": None,
                                               "subject": 1},
                              encoder_arch="linear", channels="O1,Oz,O2", batch_size=8, max_steps=2,
                              validate_every=1, report_test=True))
    assert main(["evaluate", "--output", str(tmp_path / "table"), "--align-run", str(out),
                 "--align-run", str(intra)]) == 0
    table = (tmp_path / "table" / "retrieval_table.md").read_text().splitlines()
    assert table[0] == "| method | intra-subject | leave-one-subject-out | what it does |"
    assert any(line.startswith("| ATM-S") and "26.1 / 55.3" in line for line in table)
    mine = [line.split(" | ") for line in table if "this project" in line]
    assert len(mine) == 1 and "(1 subj., 5-way)" in mine[0][1] and "(1 subj., 5-way)" in mine[0][2]
