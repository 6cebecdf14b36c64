"""generation.draw_images is the one sampler: generate, evaluate and the app draw the same image for the same
pipeline, EEG and seed (issue 13's acceptance test)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from dreamdiffusion.app.engine import Engine
from dreamdiffusion.cli import main
from dreamdiffusion.data.pairs import open_paired_dataset
from stageb_helpers import CLIP_DIM, CROSS, make_base, make_encoder, make_folder_dataset


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from dreamdiffusion.models.conditioner import EEGConditioner, load_encoder
    from dreamdiffusion.pipeline import DreamDiffusionPipeline, make_scheduler

    d = tmp_path_factory.mktemp("one_sampler")
    base = make_base(d / "base")
    enc = load_encoder(make_encoder(d / "enc", n_chans=128, n_times=512))  # the folder dataset's model input
    cond = EEGConditioner.from_encoder(enc, cross_attention_dim=CROSS, clip_dim=CLIP_DIM)
    scheduler_config = json.loads((base / "scheduler" / "scheduler_config.json").read_text())
    pipe = DreamDiffusionPipeline(unet=UNet2DConditionModel.from_pretrained(base / "unet"),
                                  vae=AutoencoderKL.from_pretrained(base / "vae"),
                                  scheduler=make_scheduler("dpm", scheduler_config), eeg_conditioner=cond)
    pipe.save_pretrained(d / "pipe")
    make_folder_dataset(d / "data")
    return d, pipe


SAMPLING = ["--split", "test", "--limit", "2", "--num-images", "2", "--steps", "2", "--guidance", "1", "--seed", "3"]


def test_generate_evaluate_and_app_write_identical_images(setup, tmp_path, capsys):
    d, pipe = setup
    data = ["--dataset", "folder", "--root", str(d / "data"), "--channel-mapping", "repeat"]
    assert main(["generate", "--model", str(d / "pipe"), "--output", str(tmp_path / "gen"), *data, *SAMPLING]) == 0, \
        capsys.readouterr().err
    assert main(["evaluate", "--model", str(d / "pipe"), "--output", str(tmp_path / "ev"), *data, *SAMPLING,
                 "--classifier", "builtin-tiny", "--no-fid", "--trials", "2", "--n-way", "2"]) == 0, \
        capsys.readouterr().err

    gen = json.loads((tmp_path / "gen" / "manifest.json").read_text())["items"]
    ev = json.loads((tmp_path / "ev" / "samples" / "manifest.json").read_text())["items"]
    assert [len(e["images"]) for e in gen] == [len(e["images"]) for e in ev] == [2, 2]  # one item format
    for g, e in zip(gen, ev):
        for gf, ef in zip(g["images"], e["images"]):
            assert (tmp_path / "gen" / gf).read_bytes() == (tmp_path / "ev" / "samples" / ef).read_bytes()
    first = [np.asarray(Image.open(tmp_path / "gen" / f)) for f in gen[0]["images"]]
    assert not np.array_equal(first[0], first[1])  # two samples of one EEG differ

    # the app draws sample j of its window as generate draws sample j of EEG 0
    window = open_paired_dataset("folder", "test", root=str(d / "data"), channel_mapping="repeat")[0]["eeg"]
    engine = Engine(pipe, SimpleNamespace(n_chans=128, n_times=512, sfreq=None))
    images = engine.generate(np.asarray(window), steps=2, guidance=1.0, seed=3, num_images=2)
    assert all(np.array_equal(np.asarray(im), ref) for im, ref in zip(images, first))
