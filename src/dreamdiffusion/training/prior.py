"""The modern recipe's optional prior: aligned-encoder prediction -> CLIP image embedding (an MLP, MSE).

InfoNCE fixes only how predictions rank against each other, not where they lie: on the built-in benchmark the
aligned encoder's val predictions have cosine ~0.2 with their own image's CLIP embedding while ranking it well,
and an IP-Adapter trained on real CLIP embeddings draws poorly from such vectors. ATM puts a diffusion prior
between the two; this is its simplest sibling, the residual MLP
:class:`~dreamdiffusion.models.encoders.EmbeddingPrior`, fitted with MSE on the train split's
(prediction, CLIP embedding of the image seen) pairs. The demo uses it where val says it helps.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from dreamdiffusion.core.ridge import RidgeSearch
from dreamdiffusion.core.seeding import seeded_generator
from dreamdiffusion.data.transforms import binned_means
from dreamdiffusion.models.encoders import AlignedEncoder, EmbeddingPrior
from dreamdiffusion.models.image_conditioner import LatentDecoder
from dreamdiffusion.training.align import collect_split

logger = logging.getLogger(__name__)


@torch.no_grad()
def predict(encoder: AlignedEncoder, x: torch.Tensor, batch_size: int = 512, scale: float | None = None) -> torch.Tensor:
    """``encoder.embed`` of prepared windows ``x`` (what the pipeline's conditioner feeds the prior): the unit
    prediction times ``scale`` (None: the encoder's ``target_scale``; the paper recipe's fitted head passes its own)."""
    scale = float(encoder.config.target_scale if scale is None else scale)
    return torch.cat([F.normalize(encoder.forward_prepared(x[i:i + batch_size]).float(), dim=-1) * scale
                      for i in range(0, len(x), batch_size)])


def train_prior(pred: torch.Tensor, target: torch.Tensor, hidden: int = 256, steps: int = 300,
                batch_size: int = 256, learning_rate: float = 1e-3, seed: int = 0) -> EmbeddingPrior:
    """Fit ``EmbeddingPrior`` on ``pred [N, D] -> target [N, D]`` (MSE); returns it in eval mode."""
    torch.manual_seed(seed)
    prior = EmbeddingPrior(pred.shape[1], hidden)
    opt = torch.optim.AdamW(prior.parameters(), lr=learning_rate, weight_decay=1e-2)
    gen = seeded_generator(seed, 31)
    for _ in range(steps):
        idx = torch.randint(0, len(pred), (min(batch_size, len(pred)),), generator=gen)
        loss = F.mse_loss(prior(pred[idx]), target[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    logger.info("prior: final train MSE %.4f", loss.detach().item())
    return prior.eval()


def embedding_match(pred: torch.Tensor, truths: torch.Tensor, ids: torch.Tensor) -> dict:
    """How well predictions sit on their images' CLIP embeddings: mean cosine to the own image, and top-1
    identification among the distinct images (``truths [M, D]``, ``ids [N]`` = each prediction's image)."""
    p, t = F.normalize(pred, dim=-1), F.normalize(truths, dim=-1)
    return {"cosine": float((p * t[ids]).sum(-1).mean()),
            "top1": float(((p @ t.T).argmax(-1) == ids).float().mean())}


@torch.no_grad()
def image_latents(images: list, vae, image_processor, batch_size: int = 128) -> torch.Tensor:
    """The VAE latents (posterior mean x scaling factor, what the UNet denoises) of PIL ``images``."""
    out = []
    for i in range(0, len(images), batch_size):
        pixels = image_processor.preprocess(images[i:i + batch_size]).to(vae.device, vae.dtype)
        out.append(vae.encode(pixels).latent_dist.mean.float().cpu() * vae.config.scaling_factor)
    return torch.cat(out)


@torch.no_grad()
def fit_latent_decoder(decoder: LatentDecoder, dataset, vae, image_processor) -> dict:
    """Fill ``decoder`` with the ridge map from ``dataset``'s EEG (binned as the decoder bins it) to the VAE latents
    of the images seen: closed form, penalty chosen on the train split by leaving out all trials of an image
    together (:class:`~dreamdiffusion.core.ridge.RidgeSearch`). Returns ``{"alpha", "n_train", "n_images"}``.

    A linear map on purpose: it is the ridge baseline's own form, so what the route adds shows against that
    baseline. On the benchmark's val split (seed 7, first 400 EEGs, guidance 3, 6 steps) img2img from its guess at
    strength 0.5 lifts the IP-Adapter route's CLIP 2-way 0.833 -> 0.867, CLIP within-class 0.537 -> 0.547 and PCC
    within-class 0.550 -> 0.575 (docs/recipes.md has both seeds and every strength)."""
    x, ids, images = collect_split(dataset, lambda eeg: binned_means(eeg, decoder.n_bins))
    latents = image_latents(images, vae, image_processor)
    if tuple(latents.shape[1:]) != decoder.latent_shape:
        raise ValueError(f"the VAE gives latents {tuple(latents.shape[1:])}, the decoder {decoder.latent_shape}")
    ridge = RidgeSearch(x.double().numpy(), ids.tolist()).fit(latents[ids].reshape(len(ids), -1).double().numpy())
    decoder.linear.weight.copy_(torch.as_tensor(ridge.coef.T, dtype=decoder.linear.weight.dtype))
    decoder.linear.bias.copy_(torch.as_tensor(ridge.intercept, dtype=decoder.linear.bias.dtype))
    logger.info("latent decoder: ridge penalty %g from %d trials of %d images", ridge.alpha, len(ids), len(images))
    return {"alpha": float(ridge.alpha), "n_train": int(len(ids)), "n_images": len(images)}


__all__ = ["predict", "train_prior", "embedding_match", "image_latents", "fit_latent_decoder"]
