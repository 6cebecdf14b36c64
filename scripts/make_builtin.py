"""Train the embedded default components (``builtin-tiny``) on the real digits and write them to
``src/dreamdiffusion/assets/builtin/`` (or ``--output``). Reproducible from ``--seed``; about ten
minutes on 2 CPU cores.

    .venv/bin/python scripts/make_builtin.py [--seed 0] [--output DIR] [--scale 1.0]

What is trained (architectures from dreamdiffusion.models.builtin):

1. ``base/vae``: AutoencoderKL, 32x32 RGB <-> 4x8x8 latents (L1 + MSE reconstruction, tiny KL); its
   ``scaling_factor`` is set to 1 / std of the training latents, as Stable Diffusion's is.
2. ``base/unet`` + ``base/class_embeddings.safetensors``: UNet2DConditionModel with epsilon
   prediction under DDPMScheduler (scaled_linear 0.00085-0.012), conditioned through cross-attention
   on a learned ``[77, 64]`` token sequence per digit; 10 % of the time the learned null sequence
   instead, so classifier-free guidance works.
3. ``clip``: CLIPVisionModelWithProjection trained CLIP-style against learned per-class "text"
   embeddings (symmetric-free InfoNCE over the 10 prototypes with a learned temperature), plus an
   instance term between two augmented views, so its ``image_embeds`` cluster by digit but still
   tell images of one digit apart. The prototypes are saved as ``clip/class_text_embeds.safetensors``.
4. ``classifier``: ResNetForImageClassification trained on the train split only; its accuracy on
   the test split is written to ``classifier/accuracy.json``.
5. ``ip_adapter``: an IP-Adapter for the base on the CLIP's ``image_embeds`` (diffusers' ``ImageProjection``
   to 4 tokens + ``IPAdapterAttnProcessor2_0`` key/value projections in every cross-attention, the
   ``h94/IP-Adapter`` checkpoint format), trained with the base frozen, the null sequence as the "text", and
   10 % of the image embeddings zeroed (diffusers' negative image embedding, so guidance works). Its check
   (``ip_adapter/quality.json``): the judge reads the images drawn from the TRUE CLIP embeddings of the test
   digits, beside chance. ``--parts ip_adapter`` trains only this part on the shipped base and CLIP
   (a few minutes).

All components see only the train+val images of the benchmark split for seed 0 (the classifier
only its train images), so with the default benchmark seed nothing was trained on a test image.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dreamdiffusion.data.synthetic import load_digit_images, split_images
from dreamdiffusion.models import builtin

logger = logging.getLogger("make_builtin")

# Every training knob in one place (steps at --scale 1.0; --scale multiplies them).
HPARAMS = dict(
    vae_steps=500, vae_batch=32, vae_lr=2e-3, vae_kl_weight=1e-6,
    unet_steps=1500, unet_batch=32, unet_lr=1.5e-3, cond_dropout=0.1,
    clip_steps=400, clip_batch=128, clip_lr=2e-3, clip_instance_weight=0.5,
    classifier_steps=400, classifier_batch=128, classifier_lr=3e-3,
    ip_steps=800, ip_batch=32, ip_lr=2e-3, ip_drop=0.1,
    sample_steps=20, guidance_scale=3.0,
)


def augment(x: torch.Tensor, gen: torch.Generator, max_shift: int = 3) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero padding): digits stay digits."""
    b, _, h, w = x.shape
    pad = F.pad(x, (max_shift,) * 4, value=float(x.min()))
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    return torch.stack([pad[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


def batches(n: int, batch: int, steps: int, gen: torch.Generator):
    """``steps`` random index batches (sampling without replacement within an epoch)."""
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        yield perm[pos:pos + batch]
        pos += batch


def cosine_lr(opt, step: int, total: int, base: float, warmup: int = 50) -> None:
    lr = base * min(1.0, (step + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(step, total) / total))
    for g in opt.param_groups:
        g["lr"] = lr


# ----------------------------------------------------------------------------- 1. VAE
def train_vae(pixels: torch.Tensor, hp: dict, gen: torch.Generator):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**builtin.vae_config())
    opt = torch.optim.AdamW(vae.parameters(), lr=hp["vae_lr"], weight_decay=0.0)
    for step, idx in enumerate(tqdm(list(batches(len(pixels), hp["vae_batch"], hp["vae_steps"], gen)), desc="vae")):
        cosine_lr(opt, step, hp["vae_steps"], hp["vae_lr"])
        x = pixels[idx]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        rec = vae.decode(z).sample
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + hp["vae_kl_weight"] * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    vae.eval()
    with torch.no_grad():
        lat = torch.cat([vae.encode(pixels[i:i + 256]).latent_dist.mean for i in range(0, len(pixels), 256)])
        rec = torch.cat([vae.decode(lat[i:i + 256]).sample for i in range(0, len(lat), 256)])
    scale = float(1.0 / lat.std())
    vae.register_to_config(scaling_factor=scale)
    stats = {"vae_recon_mse": float(F.mse_loss(rec, pixels)), "vae_scaling_factor": scale}
    logger.info("vae: %s", stats)
    return vae, lat * scale, stats


# ----------------------------------------------------------------------------- 2. UNet
def train_unet(latents: torch.Tensor, labels: torch.Tensor, hp: dict, gen: torch.Generator):
    from diffusers import DDPMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel(**builtin.unet_config())
    scheduler = DDPMScheduler(**builtin.scheduler_config())
    shape = (builtin.NUM_CLASSES, builtin.SEQUENCE_LENGTH, builtin.CROSS_ATTENTION_DIM)
    embeddings = torch.nn.Parameter(torch.randn(shape, generator=gen) * 0.5)
    null = torch.nn.Parameter(torch.zeros(shape[1:]))
    opt = torch.optim.AdamW([*unet.parameters(), embeddings, null], lr=hp["unet_lr"], weight_decay=0.0)
    losses = []
    for step, idx in enumerate(tqdm(list(batches(len(latents), hp["unet_batch"], hp["unet_steps"], gen)), desc="unet")):
        cosine_lr(opt, step, hp["unet_steps"], hp["unet_lr"])
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        zt = scheduler.add_noise(z0, noise, t)
        drop = torch.rand(len(idx), generator=gen) < hp["cond_dropout"]
        cond = torch.where(drop[:, None, None], null[None].expand(len(idx), -1, -1), embeddings[labels[idx]])
        loss = F.mse_loss(unet(zt, t, encoder_hidden_states=cond).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    unet.eval()
    stats = {"unet_final_loss": float(np.mean(losses[-100:]))}
    logger.info("unet: %s", stats)
    return unet, scheduler, embeddings.detach(), null.detach(), stats


# ----------------------------------------------------------------------------- 3. CLIP
def processor_normalize(pixels01: torch.Tensor, proc) -> torch.Tensor:
    """What an image processor does at 32 px after resizing and rescaling: its mean/std normalisation."""
    mean = torch.tensor(proc.image_mean)[None, :, None, None]
    std = torch.tensor(proc.image_std)[None, :, None, None]
    return (pixels01 - mean) / std


def clip_normalize(pixels01: torch.Tensor) -> torch.Tensor:
    return processor_normalize(pixels01, builtin.clip_processor())


def train_clip(pixels: torch.Tensor, labels: torch.Tensor, hp: dict, gen: torch.Generator):
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection(builtin.clip_config())
    text = torch.nn.Parameter(torch.randn(builtin.NUM_CLASSES, builtin.CLIP_PROJECTION_DIM, generator=gen))
    logit_scale = torch.nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))
    opt = torch.optim.AdamW([*model.parameters(), text, logit_scale], lr=hp["clip_lr"], weight_decay=0.01)
    x01 = (pixels + 1) / 2
    for step, idx in enumerate(tqdm(list(batches(len(pixels), hp["clip_batch"], hp["clip_steps"], gen)), desc="clip")):
        cosine_lr(opt, step, hp["clip_steps"], hp["clip_lr"])
        v1 = F.normalize(model(pixel_values=clip_normalize(augment(x01[idx], gen))).image_embeds, dim=-1)
        v2 = F.normalize(model(pixel_values=clip_normalize(augment(x01[idx], gen))).image_embeds, dim=-1)
        scale = logit_scale.exp().clamp(max=100)
        proto = F.normalize(text, dim=-1)
        y = labels[idx]
        # CLIP's image->text loss against the 10 class "captions"
        loss = F.cross_entropy(scale * v1 @ proto.T, y) + F.cross_entropy(scale * v2 @ proto.T, y)
        # instance term: two views of one image match each other among the batch (keeps within-class detail)
        inst = scale * v1 @ v2.T
        target = torch.arange(len(idx))
        loss = loss / 2 + hp["clip_instance_weight"] * (F.cross_entropy(inst, target) + F.cross_entropy(inst.T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return model, F.normalize(text.detach(), dim=-1)


# ----------------------------------------------------------------------------- 4. classifier
def classifier_normalize(pixels01: torch.Tensor) -> torch.Tensor:
    return processor_normalize(pixels01, builtin.classifier_processor())


def train_classifier(pixels: torch.Tensor, labels: torch.Tensor, hp: dict, gen: torch.Generator):
    from transformers import ResNetForImageClassification

    model = ResNetForImageClassification(builtin.classifier_config())
    opt = torch.optim.AdamW(model.parameters(), lr=hp["classifier_lr"], weight_decay=0.01)
    x01 = (pixels + 1) / 2
    for step, idx in enumerate(tqdm(list(batches(len(pixels), hp["classifier_batch"], hp["classifier_steps"], gen)),
                                    desc="classifier")):
        cosine_lr(opt, step, hp["classifier_steps"], hp["classifier_lr"])
        logits = model(pixel_values=classifier_normalize(augment(x01[idx], gen, max_shift=2))).logits
        loss = F.cross_entropy(logits, labels[idx], label_smoothing=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    return model


@torch.no_grad()
def classify(model, pixels: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(pixel_values=classifier_normalize((pixels[i:i + 256] + 1) / 2)).logits.argmax(-1)
                      for i in range(0, len(pixels), 256)])


# ----------------------------------------------------------------------------- 5. IP-Adapter
@torch.no_grad()
def clip_embed(clip, pixels: torch.Tensor) -> torch.Tensor:
    """CLIP ``image_embeds`` of images in [-1, 1], ``[N, CLIP_PROJECTION_DIM]``."""
    return torch.cat([clip(pixel_values=clip_normalize((pixels[i:i + 256] + 1) / 2)).image_embeds
                      for i in range(0, len(pixels), 256)])


def train_ip_adapter(unet, latents: torch.Tensor, image_embeds: torch.Tensor, null: torch.Tensor, hp: dict,
                     gen: torch.Generator):
    """Load a fresh adapter into the (frozen) base ``unet`` with diffusers' loader and train only the adapter."""
    from diffusers import DDPMScheduler

    from dreamdiffusion.models.ip_adapter import ip_adapter_parameters, new_ip_adapter_state_dict

    unet.requires_grad_(False)
    unet._load_ip_adapter_weights([new_ip_adapter_state_dict(unet, image_embeds.shape[1], gen)],
                                  low_cpu_mem_usage=False)
    params = ip_adapter_parameters(unet)
    for p in params:
        p.requires_grad_(True)
    scheduler = DDPMScheduler(**builtin.scheduler_config())
    opt = torch.optim.AdamW(params, lr=hp["ip_lr"], weight_decay=0.0)
    losses = []
    for step, idx in enumerate(tqdm(list(batches(len(latents), hp["ip_batch"], hp["ip_steps"], gen)), desc="ip")):
        cosine_lr(opt, step, hp["ip_steps"], hp["ip_lr"])
        z0 = latents[idx]
        noise = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        zt = scheduler.add_noise(z0, noise, t)
        keep = (torch.rand(len(idx), generator=gen) >= hp["ip_drop"]).float()[:, None]
        embeds = image_embeds[idx] * keep  # dropped rows = zeros, diffusers' negative image embedding
        text = null[None].expand(len(idx), -1, -1)  # the "empty prompt": the adapter carries the image
        eps = unet(zt, t, encoder_hidden_states=text, added_cond_kwargs={"image_embeds": [embeds[:, None]]}).sample
        loss = F.mse_loss(eps, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    unet.eval()
    stats = {"ip_final_loss": float(np.mean(losses[-100:]))}
    logger.info("ip_adapter: %s", stats)
    return unet, stats


# ----------------------------------------------------------------------------- check
@torch.no_grad()
def sample_ddim(unet, vae, cond: torch.Tensor, uncond: torch.Tensor, steps: int, guidance: float, seed: int,
                image_embeds: torch.Tensor | None = None):
    """DDIM samples in [-1, 1] for a batch of contexts ``cond`` (``uncond`` for the guidance's other half).

    With ``image_embeds`` the UNet holds an IP-Adapter: the conditional half gets them, the other half zeros.
    """
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(**builtin.scheduler_config())
    sched.set_timesteps(steps)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn((len(cond), builtin.LATENT_CHANNELS, 8, 8), generator=gen)
    both = torch.cat([uncond, cond])
    extra = {} if image_embeds is None else {
        "added_cond_kwargs": {"image_embeds": [torch.cat([torch.zeros_like(image_embeds), image_embeds])[:, None]]}}
    for t in sched.timesteps:
        eps_u, eps_c = unet(torch.cat([z, z]), t, encoder_hidden_states=both, **extra).sample.chunk(2)
        z = sched.step(eps_u + guidance * (eps_c - eps_u), t, z).prev_sample
    return vae.decode(z / vae.config.scaling_factor).sample.clamp(-1, 1)


def sample_digits(unet, vae, embeddings, null, n_per_class: int, steps: int, guidance: float, seed: int):
    """Class-conditional DDIM samples in [-1, 1], ``[10 * n_per_class, 3, 32, 32]``, labels."""
    labels = torch.arange(builtin.NUM_CLASSES).repeat_interleave(n_per_class)
    uncond = null[None].expand(len(labels), -1, -1)
    return sample_ddim(unet, vae, embeddings[labels], uncond, steps, guidance, seed), labels


def check_ip_adapter(unet, vae, clip, classifier, null, pixels: torch.Tensor, labels: torch.Tensor, hp: dict,
                     seed: int) -> tuple[dict, torch.Tensor]:
    """Images drawn from the true CLIP embeddings of ``pixels`` (the test digits): judged, and identified in CLIP."""
    truth = clip_embed(clip, pixels)
    text = null[None].expand(len(pixels), -1, -1)
    out = {"n_images": len(pixels), "chance": 1 / builtin.NUM_CLASSES, "scheduler": "DDIM",
           "steps": hp["sample_steps"], "ip_adapter_scale": 1.0, "by_guidance": {}}
    for guidance in (1.0, hp["guidance_scale"]):
        images = sample_ddim(unet, vae, text, text, hp["sample_steps"], guidance, seed, image_embeds=truth)
        sim = F.normalize(clip_embed(clip, images), dim=-1) @ F.normalize(truth, dim=-1).T  # [generated, truths]
        out["by_guidance"][str(guidance)] = {
            "judged_accuracy": float((classify(classifier, images) == labels).float().mean()),
            # the own source image ranked first among all test images: within-class detail, chance 1/N
            "clip_retrieval_top1": float((sim.argmax(-1) == torch.arange(len(images))).float().mean()),
            "retrieval_chance": 1 / len(images)}
    logger.info("ip_adapter check: %s", out["by_guidance"])
    return out, images


def save_grid(images: torch.Tensor, n_cols: int, path: Path) -> None:
    from PIL import Image

    arr = ((images.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    n, h, w, _ = arr.shape
    rows = (n + n_cols - 1) // n_cols
    grid = np.zeros((rows * h, n_cols * w, 3), np.uint8)
    for i, im in enumerate(arr):
        grid[(i // n_cols) * h:(i // n_cols + 1) * h, (i % n_cols) * w:(i % n_cols + 1) * w] = im
    Image.fromarray(grid).save(path)


def ip_adapter_part(unet, vae, clip, classifier, null, pixels, labels, seen, test, hp: dict, seed: int,
                    gen: torch.Generator) -> dict:
    """Train the IP-Adapter on a copy of the base UNet and check it; returns its weights, report and samples."""
    import copy

    from dreamdiffusion.models.ip_adapter import ip_adapter_state_dict

    t0 = time.time()
    with torch.no_grad():
        latents = torch.cat([vae.encode(pixels[seen][i:i + 256]).latent_dist.mean for i in range(0, len(seen), 256)])
    latents = latents * vae.config.scaling_factor
    embeds = clip_embed(clip, pixels[seen])
    ip_unet, stats = train_ip_adapter(copy.deepcopy(unet), latents, embeds, null, hp, gen)
    quality, samples = check_ip_adapter(ip_unet, vae, clip, classifier, null, pixels[test], labels[test], hp, seed)
    quality.update(stats, trained_on="train+val images of the seed-0 benchmark split; checked on its test images",
                   # what the EEG route rescales its predicted embeddings to (pipeline: image_embed_norm)
                   train_image_embed_norm=float(embeds.norm(dim=-1).mean()),
                   hyperparameters={k: hp[k] for k in hp if k.startswith("ip_")},
                   n_parameters=sum(p.numel() for p in ip_adapter_state_dict(ip_unet)["image_proj"].values())
                   + sum(p.numel() for p in ip_adapter_state_dict(ip_unet)["ip_adapter"].values()),
                   seconds=round(time.time() - t0, 1))
    return {"state_dict": ip_adapter_state_dict(ip_unet), "quality": quality, "samples": samples[:80]}


def write_ip_adapter(folder: Path, part: dict) -> None:
    from dreamdiffusion.models.ip_adapter import save_ip_adapter

    folder.mkdir(parents=True, exist_ok=True)
    save_ip_adapter(part["state_dict"], folder, metadata={"base": builtin.BUILTIN_NAME, "format": "h94/IP-Adapter"})
    (folder / "quality.json").write_text(json.dumps(part["quality"], indent=1))
    save_grid(part["samples"], 10, folder / "samples.png")


def only_ip_adapter(out: Path, hp: dict, seed: int, data: dict) -> int:
    """``--parts ip_adapter``: train the adapter for the shipped base and CLIP; swap in ``out/ip_adapter``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection, ResNetForImageClassification

    unet = UNet2DConditionModel.from_pretrained(out / "base", subfolder="unet").eval()
    vae = AutoencoderKL.from_pretrained(out / "base", subfolder="vae").eval()
    clip = CLIPVisionModelWithProjection.from_pretrained(out / "clip").eval()
    classifier = ResNetForImageClassification.from_pretrained(out / "classifier").eval()
    _, null = builtin.class_embeddings(out / "base")
    gen = torch.Generator().manual_seed(seed)
    part = ip_adapter_part(unet, vae, clip, classifier, null, data["pixels"], data["labels"], data["seen"],
                           data["test"], hp, seed, gen)
    tmp = Path(tempfile.mkdtemp(prefix="ip_adapter.tmp-", dir=out))
    tmp.chmod(0o755)
    write_ip_adapter(tmp, part)
    shutil.rmtree(out / "ip_adapter", ignore_errors=True)
    os.replace(tmp, out / "ip_adapter")
    report = json.loads((out / "builtin.json").read_text())
    report["hyperparameters"].update(part["quality"]["hyperparameters"])
    report["ip_adapter"] = {k: v for k, v in part["quality"].items() if k != "hyperparameters"}
    (out / "builtin.json").write_text(json.dumps(report, indent=1))
    logger.info("wrote %s: %s", out / "ip_adapter", part["quality"]["by_guidance"])
    return 0


def load_data() -> dict:
    images, labels_np = load_digit_images(builtin.RESOLUTION)
    splits = split_images(labels_np, seed=0)  # the default benchmark's split
    return {"pixels": torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1,  # [N, 3, 32, 32], [-1, 1]
            "labels": torch.from_numpy(labels_np), "seen": torch.tensor(sorted(splits["train"] + splits["val"])),
            "train": torch.tensor(splits["train"]), "test": torch.tensor(splits["test"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=builtin.ASSETS)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every step count (0.05 for a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    parser.add_argument("--parts", choices=("all", "ip_adapter"), default="all",
                        help="ip_adapter: train only the IP-Adapter, for the base and CLIP already in --output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    hp = {k: (max(1, int(v * args.scale)) if k.endswith("_steps") and k != "sample_steps" else v)
          for k, v in HPARAMS.items()}
    data = load_data()
    if args.parts == "ip_adapter":
        return only_ip_adapter(Path(args.output), hp, args.seed, data)
    return train_everything(args, hp, data)


def train_everything(args, hp: dict, data: dict) -> int:
    t0 = time.time()
    pixels, labels, seen, train, test = (data[k] for k in ("pixels", "labels", "seen", "train", "test"))
    gen = torch.Generator().manual_seed(args.seed)

    vae, latents, vae_stats = train_vae(pixels[seen], hp, gen)
    unet, scheduler, embeddings, null, unet_stats = train_unet(latents, labels[seen], hp, gen)
    clip, text = train_clip(pixels[seen], labels[seen], hp, gen)
    classifier = train_classifier(pixels[train], labels[train], hp, gen)

    cls_acc = float((classify(classifier, pixels[test]) == labels[test]).float().mean())
    with torch.no_grad():
        emb = torch.cat([clip(pixel_values=clip_normalize((pixels[test][i:i + 256] + 1) / 2)).image_embeds
                         for i in range(0, len(test), 256)])
    clip_zero_shot = float(((F.normalize(emb, dim=-1) @ text.T).argmax(-1) == labels[test]).float().mean())
    samples, sample_labels = sample_digits(unet, vae, embeddings, null, 8, hp["sample_steps"], hp["guidance_scale"],
                                           args.seed)
    base_acc = float((classify(classifier, samples) == sample_labels).float().mean())
    ip_part = ip_adapter_part(unet, vae, clip, classifier, null, pixels, labels, seen, test, hp, args.seed, gen)
    report = {
        "name": builtin.BUILTIN_NAME, "seed": args.seed, "scale": args.scale, "hyperparameters": hp,
        "trained_on": "scikit-learn digits, train+val images of the seed-0 benchmark split (classifier: train only)",
        **vae_stats, **unet_stats,
        "classifier_test_accuracy": cls_acc, "clip_zero_shot_test_accuracy": clip_zero_shot,
        "base_samples_judged_accuracy": base_acc,
        "ip_adapter": {k: v for k, v in ip_part["quality"].items() if k != "hyperparameters"},
        "base_sampling": {"scheduler": "DDIM", "steps": hp["sample_steps"], "guidance_scale": hp["guidance_scale"],
                          "n_per_class": 8},
        "n_parameters": {"unet": sum(p.numel() for p in unet.parameters()),
                         "vae": sum(p.numel() for p in vae.parameters()),
                         "clip": sum(p.numel() for p in clip.parameters()),
                         "classifier": sum(p.numel() for p in classifier.parameters())},
        "versions": {"torch": torch.__version__, "diffusers": __import__("diffusers").__version__,
                     "transformers": __import__("transformers").__version__},
    }

    # Write everything into a temp folder, then swap it in, so a half-written builtin never ships.
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".tmp-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; this folder ships as package data
    try:
        builtin.write_base(tmp / "base", unet, vae, scheduler, embeddings, null)
        clip.save_pretrained(tmp / "clip")
        builtin.clip_processor().save_pretrained(tmp / "clip")
        from safetensors.torch import save_file

        save_file({"class_text_embeds": text.contiguous()}, str(tmp / "clip" / "class_text_embeds.safetensors"),
                  metadata={"class_names": json.dumps(builtin.CLASS_NAMES)})
        classifier.save_pretrained(tmp / "classifier")
        builtin.classifier_processor().save_pretrained(tmp / "classifier")
        (tmp / "classifier" / "accuracy.json").write_text(json.dumps(
            {"test_accuracy": cls_acc, "n_test": len(test), "split": "seed-0 benchmark split, test images",
             "trained_on": "train images of the same split"}, indent=1))
        save_grid(samples, 8, tmp / "base" / "samples.png")
        write_ip_adapter(tmp / "ip_adapter", ip_part)
        report["seconds"] = round(time.time() - t0, 1)
        (tmp / "builtin.json").write_text(json.dumps(report, indent=1))
        old = out.with_name(out.name + ".old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %s in %.0f s: %s", out, time.time() - t0,
                {k: report[k] for k in ("classifier_test_accuracy", "clip_zero_shot_test_accuracy",
                                        "base_samples_judged_accuracy", "vae_recon_mse")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
