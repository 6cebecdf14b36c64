"""Tiny Stage B components for tests: saved with save_pretrained, loaded back through models/hub.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

RES = 16  # pixels; VAE with 2 blocks -> latents 4 x 8 x 8
CROSS = 32
CLIP_DIM = 24
N_CHANS, N_TIMES = 8, 64


def make_base(folder: Path, seed: int = 0) -> Path:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=RES // 2, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CROSS, attention_head_dim=4, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
                        sample_size=RES)
    # SD 1.x ships a PNDM scheduler config; the noise schedule is what matters.
    sched = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    sched.save_pretrained(folder / "scheduler")
    return folder


def make_clip(folder: Path, seed: int = 0) -> Path:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8, projection_dim=CLIP_DIM))
    model.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def make_encoder(folder: Path, n_chans: int = N_CHANS, n_times: int = N_TIMES, seed: int = 0) -> Path:
    from dreamdiffusion.models.eeg_encoder import MaskedSignalModel

    torch.manual_seed(seed)
    msm = MaskedSignalModel.from_preset("tiny", n_chans=n_chans, n_times=n_times, sfreq=128.0, patch_size=4)
    msm.save_pretrained(folder)
    return folder


class PairList(torch.utils.data.Dataset):
    """Stand-in paired dataset: EEG whose mean encodes a colour, images of that colour."""

    def __init__(self, n: int, seed: int = 0, n_chans: int = N_CHANS, n_times: int = N_TIMES):
        rng = np.random.default_rng(seed)
        self.items = []
        for i in range(n):
            label = i % 2
            colour = (200, 30, 30) if label else (30, 30, 200)
            img = np.clip(np.array(colour)[None, None] + rng.normal(0, 20, (24, 20, 3)), 0, 255).astype(np.uint8)
            eeg = torch.from_numpy(rng.normal(label, 1.0, (n_chans, n_times)).astype(np.float32))
            self.items.append({"eeg": eeg, "image": Image.fromarray(img), "label": label, "subject": 1,
                               "image_name": f"img{i}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def make_folder_dataset(root: Path, n_train: int = 6, n_val: int = 2, n_test: int = 2, missing_image: bool = False) -> Path:
    """A `--dataset folder` tree: two FIF recordings, PNG images and pairs.csv with explicit splits."""
    import mne

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sfreq, n_ch = 256.0, 8
    names = ["Fz", "Cz", "Pz", "Oz", "C3", "C4", "O1", "O2"]
    for f in range(2):
        data = rng.normal(0, 10e-6, (n_ch, int(sfreq * 30)))
        raw = mne.io.RawArray(data, mne.create_info(names, sfreq, "eeg"), verbose="error")
        raw.save(root / f"rec{f}_raw.fif", overwrite=True, verbose="error")
    rows = ["eeg_file,onset,image,label,split"]
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    for i, split in enumerate(splits):
        label = i % 2
        colour = (200, 40, 40) if label else (40, 40, 200)
        img = np.clip(np.array(colour)[None, None] + rng.normal(0, 15, (20, 20, 3)), 0, 255).astype(np.uint8)
        name = f"img{i}.png"
        if not (missing_image and i == 0):
            Image.fromarray(img).save(root / name)
        rows.append(f"rec{i % 2}_raw.fif,{1.0 + 2.0 * i},{name},{label},{split}")
    (root / "pairs.csv").write_text("\n".join(rows) + "\n")
    return root


def add_text_encoder(folder: Path, seed: int = 0) -> Path:
    """Give the base at ``folder`` a tiny CLIP text encoder + tokenizer (a Stable Diffusion repository's layout).

    The vocabulary knows the digits and a few words; whatever else a prompt says maps to the unknown token."""
    import json

    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    words = ["<|startoftext|>", "<|endoftext|>", "a</w>", "photo</w>", "of</w>"] + [f"{d}</w>" for d in range(10)]
    tok_dir = folder / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    (tok_dir / "vocab.json").write_text(json.dumps({w: i for i, w in enumerate(words)}))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77).save_pretrained(tok_dir)
    torch.manual_seed(seed)
    CLIPTextModel(CLIPTextConfig(vocab_size=len(words), hidden_size=CROSS, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=4, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                                 pad_token_id=1)).save_pretrained(folder / "text_encoder")
    return folder
