"""Contrastive EEG-CLIP alignment (the modern recipe's first stage): ``dreamdiffusion align``.

Only the EEG encoder + projector train, against the frozen CLIP image embeddings of the paired images;
there is no UNet and no VAE, so it takes minutes on a CPU. The recipe of the field's leaders since 2024
(NICE, ATM, UBP, NeuroBridge):

- the loss is symmetric InfoNCE with a learnable temperature and in-batch negatives, repeated trials of one
  image counted as positives of each other (:mod:`dreamdiffusion.training.contrastive`);
- CLIP runs once per distinct image before training (targets are a table, not a forward pass per step);
- optional image-side targets: ``target_blur`` (UBP's blur prior; ``target_blur_adaptive`` = UBP's
  uncertainty-aware choice among a weaker, the given and a stronger blur per trial, from a running mean of
  how well the trial matches its image) and ``target_views`` (NeuroBridge: the mean embedding of degraded
  views);
- validation: zero-shot retrieval of the distinct val images (their plain CLIP embeddings, as ``evaluate``
  scores test) by every val EEG, top-1 / top-5; the step with the best val top-1 (then top-5) is kept.

The test split is read only with ``report_test``, after the choice is final, to put its numbers in the summary.
Output folder: the :class:`~dreamdiffusion.models.encoders.AlignedEncoder` itself (``config.json`` +
``diffusion_pytorch_model.safetensors``), ``align_config.json``, ``align_summary.json`` and ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dreamdiffusion.core.config import dataclass_from_dict
from dreamdiffusion.core.errors import ConfigError, DataError, TrainingError
from dreamdiffusion.core.files import atomic_save_pretrained, atomic_write_json, check_output_folder, staged_folder
from dreamdiffusion.core.ridge import fit_ridge
from dreamdiffusion.core.seeding import STREAM_DATA, STREAM_INIT, derived_seed, seed_everything
from dreamdiffusion.data.channel_sets import resolve_channels
from dreamdiffusion.data.image_targets import VIEW_KINDS, blur_image, degraded_view
from dreamdiffusion.data.pairs import open_paired_dataset
from dreamdiffusion.data.transforms import preprocessing_record
from dreamdiffusion.evaluation.baselines import eeg_feature_matrix
from dreamdiffusion.evaluation.metrics import retrieval_accuracy
from dreamdiffusion.models.conditioner import ENCODER_CONFIG_KEYS, load_encoder
from dreamdiffusion.models.encoders import ARCHS, AlignedEncoder
from dreamdiffusion.models.hub import clip_image_embeds, load_clip
from dreamdiffusion.pipeline import PREPROCESSING_FILE
from dreamdiffusion.training.contrastive import info_nce
from dreamdiffusion.training.loop import JsonlLog, StepBatchSampler, adamw_param_groups, warmup_cosine_scheduler

logger = logging.getLogger(__name__)

CONFIG_FILE = "align_config.json"
SUMMARY_FILE = "align_summary.json"
METRICS_FILE = "metrics.jsonl"
# UBP's uncertainty-aware blur: three levels around the given sigma, a trial's level from how its match to
# its image compares with the batch (alpha 0.05, two-sided; running mean with weight gamma 0.3).
ADAPTIVE_LEVELS = (0.5, 1.0, 1.5)
ADAPTIVE_Z, ADAPTIVE_GAMMA = 1.96, 0.3


# Chosen on the val split of the built-in benchmark (seed 7; val retrieval 0.074 / 0.247 against the ridge
# baseline's 0.046 / 0.211): 600 steps at lr 3e-3, the best val step kept.
BENCHMARK_SETTINGS = dict(encoder_arch="linear", spatial_filters=8, time_pool=32, learning_rate=3e-3, max_steps=600,
                          cosine_weight=1.0, weight_decay=1.0)


@dataclass
class AlignConfig:
    """Every hyper-parameter of ``align`` in one place."""

    output: str = "runs/align"  # output folder: the aligned encoder + its summary
    dataset: str = "synthetic"  # paired dataset name (synthetic, things-eeg2, eegcvpr40, folder)
    dataset_options: dict = field(default_factory=dict)  # passed to open_paired_dataset
    clip: str = "openai/clip-vit-large-patch14"  # frozen CLIP vision model: folder, hub id or builtin-tiny
    encoder: str | None = None  # a pretrained MSM encoder folder (msm only); None: random init
    encoder_arch: str = "msm"  # msm (the paper's) | shallow | eegnet | conformer | linear (UBP)
    encoder_preset: str = "tiny"  # msm size when no --encoder is given: paper | small | tiny
    channels: str | None = None  # e.g. "ubp17" or "O1,Oz,O2"; None: every channel
    time_pool: int = 1  # average-pool the window over this many samples (cheap downsampling)
    spatial_filters: int = 0  # linear arch: mix the channels into this many virtual channels first (0: off)
    proj_dropout: float = 0.3  # dropout inside UBP's projector
    batch_size: int = 256  # in-batch negatives: larger is better while it fits
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 20
    max_steps: int = 400
    max_grad_norm: float = 1.0
    init_temperature: float = 0.07  # CLIP's
    target_blur: float = 0.0  # Gaussian sigma as a share of the image width (UBP ~ 0.04); 0: off
    target_blur_adaptive: bool = False  # UBP's per-trial choice of a weaker / the given / a stronger blur
    target_views: int = 0  # NeuroBridge: average the embeddings of this many degraded views (0: off)
    # EEG side: the share of training trials replaced by the mean of themselves and another trial of the same
    # image (a cleaner example of the same response; the val and test trials stay single). 0: off.
    trial_mix: float = 0.0
    cosine_weight: float = 0.0  # + weight x (1 - cos) to the own target beside InfoNCE (ATM adds such a term)
    # + weight x InfoNCE among the batch's images of the own class only (contrastive.info_nce; needs labels)
    within_class_weight: float = 0.0
    # linear arch: start from the closed-form ridge map of the prepared train EEG to the unit targets (penalty by
    # leave-one-image-out on train; with spatial filters, its leading channel subspace), then train as usual
    init_ridge: bool = False
    validate_every: int = 25  # steps between val retrievals (and the last step)
    select: str = "best"  # best (val top-1, then top-5) | last
    report_test: bool = False  # score the test split once, after the final choice (never used to choose)
    # Beside the numbers: baseline_ridge_clip (evaluation.baselines: ridge from the binned EEG to the CLIP embedding,
    # penalty by leave-one-out). Off by default: on the benchmark its fit takes longer than the alignment itself.
    baseline: bool = False
    seed: int = 0

    @classmethod
    def benchmark(cls, **overrides) -> "AlignConfig":
        """The settings chosen on the built-in benchmark's val split (see docs/recipes.md): UBP's linear encoder
        with 8 learned spatial filters on 16 time bins, InfoNCE + (1 - cos), strong weight decay."""
        return cls(**{**BENCHMARK_SETTINGS, **overrides})

    def validate(self) -> None:
        if self.encoder_arch not in ARCHS:
            raise ConfigError(f"--encoder-arch must be one of {', '.join(ARCHS)}, got {self.encoder_arch!r}")
        if self.encoder and self.encoder_arch != "msm":
            raise ConfigError("--encoder (a pretrained MSM encoder) needs --encoder-arch msm")
        if self.select not in ("best", "last"):
            raise ConfigError(f"--select must be best or last, got {self.select!r}")
        for name in ("batch_size", "max_steps", "time_pool"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.batch_size < 2:
            raise ConfigError("--batch-size must be at least 2 (InfoNCE needs in-batch negatives)")
        if self.learning_rate <= 0 or self.init_temperature <= 0:
            raise ConfigError("--learning-rate and the initial temperature must be positive")
        if not 0 <= self.trial_mix <= 1 or self.cosine_weight < 0:
            raise ConfigError("--trial-mix must be in [0, 1] and --cosine-weight >= 0")
        if not 0 <= self.target_blur < 1 or self.target_views < 0:
            raise ConfigError("--target-blur must be in [0, 1) (a share of the image width), --target-views >= 0")
        if self.init_ridge and self.encoder_arch != "linear":
            raise ConfigError("--init-ridge needs --encoder-arch linear (a ridge map is a linear encoder)")
        if self.target_blur_adaptive and self.target_blur <= 0:
            raise ConfigError("--target-blur-adaptive needs --target-blur SIGMA > 0 (the middle level)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AlignConfig":
        return dataclass_from_dict(cls, data, "align settings")


# ----------------------------------------------------------------------------------------------- data

def collect_split(dataset, prepare, chunk: int = 256, features: list | None = None) -> tuple[torch.Tensor, np.ndarray, list]:
    """Every item of ``dataset`` through ``prepare`` (channel pick + pooling), kept in memory.

    Returns ``(x [N, C', T'], each item's index [N] among the distinct images, the distinct images' PIL
    images in order of first appearance)``; items of one image share its ``image_name``. ``features``: a list
    that receives the ridge baseline's binned features of every item (``evaluation.baselines``).
    """
    xs, buf, ids, index, images = [], [], [], {}, []
    for i in range(len(dataset)):
        item = dataset[i]
        key = item.get("image_name", i)
        if key not in index:
            index[key] = len(images)
            images.append(item["image"])
        ids.append(index[key])
        buf.append(torch.as_tensor(item["eeg"], dtype=torch.float32))
        if len(buf) == chunk or i == len(dataset) - 1:
            with torch.no_grad():
                xs.append(prepare(torch.stack(buf)))
            if features is not None:
                features.append(eeg_feature_matrix(buf))
            buf = []
    if not xs:
        raise DataError("the split is empty")
    return torch.cat(xs), np.asarray(ids, dtype=np.int64), images


# --------------------------------------------------------------------------------------- CLIP targets

@torch.no_grad()
def clip_embed(images: list, clip_model, clip_processor, batch_size: int = 64) -> torch.Tensor:
    """CLIP ``image_embeds`` ``[N, D]`` (not normalised) of PIL images on the CPU: the one CLIP function,
    :func:`dreamdiffusion.models.hub.clip_image_embeds`."""
    return clip_image_embeds(images, clip_model, clip_processor, batch_size=batch_size).cpu()


def train_targets(images: list, clip_model, clip_processor, cfg: AlignConfig) -> torch.Tensor:
    """``[L, M, D]`` unit-length targets of the M train images at L blur levels (L = 3 if adaptive, else 1)."""
    sigmas = [cfg.target_blur * f for f in ADAPTIVE_LEVELS] if cfg.target_blur_adaptive else [cfg.target_blur]
    levels = []
    for level, sigma in enumerate(sigmas):
        shown = [blur_image(im.convert("RGB"), sigma) for im in images]
        emb = F.normalize(clip_embed(shown, clip_model, clip_processor), dim=-1)
        if cfg.target_views:
            rng = np.random.default_rng(derived_seed(cfg.seed, STREAM_INIT, 101, level))
            emb = _with_views(emb, shown, clip_model, clip_processor, cfg.target_views, rng)
        levels.append(emb)
    return torch.stack(levels)


def _with_views(emb: torch.Tensor, images: list, clip_model, clip_processor, n_views: int,
                rng: np.random.Generator) -> torch.Tensor:
    """NeuroBridge's fused target: the mean of the image's and ``n_views`` degraded views' unit embeddings."""
    total = emb.clone()
    for v in range(n_views):
        kind = VIEW_KINDS[v % len(VIEW_KINDS)]
        views = [degraded_view(im, kind, rng) for im in images]
        total += F.normalize(clip_embed(views, clip_model, clip_processor), dim=-1)
    return F.normalize(total / (n_views + 1), dim=-1)


# --------------------------------------------------------------------------------------------- model

def build_model(cfg: AlignConfig, dataset, n_chans: int, n_times: int, clip_dim: int) -> AlignedEncoder:
    """The aligned encoder for windows ``[n_chans, n_times]`` of ``dataset`` (its channel names pick ``channels``)."""
    sfreq = float(getattr(getattr(dataset, "spec", None), "sfreq", None) or getattr(dataset, "sfreq", None)
                  or 512 / 0.44)
    index = names = None
    if cfg.channels:
        ch_names = list(getattr(dataset, "ch_names", None) or [])
        if len(ch_names) != n_chans:
            raise ConfigError(f"--channels needs the dataset's channel names; it has {len(ch_names)} names for "
                              f"{n_chans} channels", cfg.dataset)
        montage = (getattr(dataset, "description", None) or {}).get("montage")
        index, names = resolve_channels(cfg.channels, ch_names, montage)
        logger.info("channels %s -> %s", cfg.channels, ", ".join(names))
    options = {"preset": cfg.encoder_preset} if cfg.encoder_arch == "msm" else None
    if cfg.encoder_arch == "linear" and cfg.spatial_filters:
        options = {"spatial_filters": cfg.spatial_filters}
    model = AlignedEncoder(arch=cfg.encoder_arch, in_chans=n_chans, in_times=n_times, in_sfreq=sfreq,
                           clip_dim=clip_dim, channel_index=index, channel_names=names, time_pool=cfg.time_pool,
                           arch_options=options, proj_dropout=cfg.proj_dropout, init_temperature=cfg.init_temperature)
    if cfg.encoder:
        _load_pretrained_msm(model, cfg)
    return model


def _load_pretrained_msm(model: AlignedEncoder, cfg: AlignConfig) -> None:
    encoder = load_encoder(cfg.encoder)
    target = model.backbone.encoder
    mismatch = [k for k in ENCODER_CONFIG_KEYS if k != "sfreq" and encoder.config[k] != target.config[k]]
    if mismatch:
        raise ConfigError(f"the pretrained encoder does not fit this input ({', '.join(mismatch)} differ: "
                          f"pretrained {[encoder.config[k] for k in mismatch]}, here "
                          f"{[target.config[k] for k in mismatch]}); match --encoder-preset, --channels and "
                          "--time-pool to it", cfg.encoder)
    target.load_state_dict(encoder.state_dict())


@torch.no_grad()
def embed_all(model: AlignedEncoder, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    out = torch.cat([model.forward_prepared(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train()
    return out


def retrieval(model: AlignedEncoder, split: tuple, candidates: torch.Tensor) -> dict:
    """Top-1 / top-5 retrieval of each EEG's image among the split's distinct images (all of them compete)."""
    x, ids = split
    result = retrieval_accuracy(embed_all(model, x), candidates, top_k=(1, 5), targets=ids.tolist())
    return {"top1": result["retrieval_top1"], "top5": result["retrieval_top5"], "n_way": result["retrieval_n_way"],
            "chance_top1": result["retrieval_chance_top1"], "n_eeg": int(len(x))}


def adaptive_levels(diag: np.ndarray, sims: np.ndarray, idx: np.ndarray, levels: np.ndarray) -> None:
    """UBP's uncertainty-aware blur: update the running match ``sims[idx]`` with this batch's ``diag`` and give
    trials far above the batch a weaker blur (level 0), far below a stronger one (level 2), others the middle."""
    batch = ADAPTIVE_GAMMA * diag + (1 - ADAPTIVE_GAMMA) * sims[idx]
    mean, std = batch.mean(), batch.std(ddof=1) if len(batch) > 1 else 0.0
    level = np.ones(len(idx), dtype=np.int64)
    level[diag > mean + ADAPTIVE_Z * std] = 0
    level[diag < mean - ADAPTIVE_Z * std] = 2
    sims[idx] = batch
    levels[idx] = level


# ---------------------------------------------------------------------------------------------- loop

def same_image_partners(ids: np.ndarray) -> list[np.ndarray]:
    """For each trial, the other trials of its image (empty where the image was shown once)."""
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(ids.tolist()):
        groups.setdefault(key, []).append(i)
    return [np.asarray([j for j in groups[key] if j != i], dtype=np.int64) for i, key in enumerate(ids.tolist())]


def mixed_batch(x: torch.Tensor, idx: np.ndarray, partners: list, share: float, rng: np.random.Generator):
    """``x[idx]`` with a ``share`` of the rows averaged with another trial of the same image."""
    batch = x[idx]
    if share <= 0:
        return batch
    rows = [r for r, i in enumerate(idx) if len(partners[i]) and rng.random() < share]
    if rows:
        other = [int(rng.choice(partners[idx[r]])) for r in rows]
        batch = batch.clone()
        batch[rows] = 0.5 * (batch[rows] + x[other])
    return batch


def ridge_start(model: AlignedEncoder, train: tuple, targets: torch.Tensor) -> dict:
    """``init_ridge``: the ridge map from the prepared train EEG (flattened) to its image's unit target (the middle
    blur level), as the model's starting point (:meth:`AlignedEncoder.start_from_linear_map`). The targets are
    centred over their dimensions first: the projector ends in a LayerNorm, whose output has zero mean there.
    Returns ``{"alpha": the penalty, "seconds": ...}``."""
    t0 = time.perf_counter()
    x, ids = train
    y = targets[len(targets) // 2][ids].double().numpy()
    reg = fit_ridge(x.flatten(1).double().numpy(), y - y.mean(axis=1, keepdims=True), groups=ids.tolist())
    model.start_from_linear_map(torch.from_numpy(reg.coef.T.copy()), torch.from_numpy(reg.intercept))
    logger.info("align: ridge start (penalty %g) in %.1f s", reg.alpha, time.perf_counter() - t0)
    return {"alpha": float(reg.alpha), "seconds": round(time.perf_counter() - t0, 2)}


def _better(r: dict, best: dict | None) -> bool:
    return best is None or (r["top1"], r["top5"]) > (best["top1"], best["top5"])


def train_loop(model: AlignedEncoder, cfg: AlignConfig, train: tuple, targets: torch.Tensor,
               val: tuple | None, log: JsonlLog) -> dict:
    """Optimise ``model`` on ``train = (x, image ids[, class of each image id])`` against ``targets [L, M, D]``;
    returns the best record (its weights are loaded back into ``model`` when ``cfg.select == "best"``). The classes
    are read only for ``cfg.within_class_weight``."""
    x, ids = train[:2]
    image_classes = torch.as_tensor(train[2]) if len(train) > 2 and train[2] is not None else None
    if cfg.within_class_weight and image_classes is None:
        raise ConfigError("the within-class loss needs the class of each training image (labels)", cfg.output)
    sampler = StepBatchSampler(len(x), min(cfg.batch_size, len(x)), cfg.seed, cfg.max_steps)
    opt = torch.optim.AdamW(adamw_param_groups(model, cfg.weight_decay), lr=cfg.learning_rate)
    sched = warmup_cosine_scheduler(opt, min(cfg.warmup_steps, cfg.max_steps // 2), cfg.max_steps)
    levels = np.full(len(x), 1 if cfg.target_blur_adaptive else 0, dtype=np.int64)
    sims = np.zeros(len(x))
    best, best_state = None, None
    partners = same_image_partners(ids) if cfg.trial_mix > 0 else None
    model.train()
    for step, batch in enumerate(sampler, start=1):
        idx = np.asarray(batch)
        z = model.forward_prepared(mixed_batch(x, idx, partners, cfg.trial_mix,
                                               np.random.default_rng(derived_seed(cfg.seed, STREAM_DATA, 17, step))))
        target = targets[levels[idx], ids[idx]]
        batch_ids = torch.from_numpy(ids[idx])
        loss = info_nce(z, target, model.temperature_scale(), batch_ids, cfg.cosine_weight,
                        None if image_classes is None else image_classes[batch_ids], cfg.within_class_weight)
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {float(loss)} at step {step} (lower --learning-rate)", cfg.output)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        if cfg.target_blur_adaptive:
            diag = F.cosine_similarity(z.detach().float(), targets[1, ids[idx]], dim=-1).numpy()
            adaptive_levels(diag, sims, idx, levels)
        record = {"step": step, "loss": float(loss.detach()), "temperature": float(1 / model.temperature_scale().detach()),
                  "lr": sched.get_last_lr()[0]}
        if val is not None and (step % max(1, cfg.validate_every) == 0 or step == cfg.max_steps):
            r = retrieval(model, val[:2], val[2])
            record.update({"val_top1": r["top1"], "val_top5": r["top5"]})
            if _better(r, best):
                best = {"step": step, **r}
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log.write(record)
    if best is None or cfg.select == "last":
        return {"step": cfg.max_steps, **(retrieval(model, val[:2], val[2]) if val is not None else {})}
    model.load_state_dict(best_state)
    return best


def _open(cfg: AlignConfig, split: str, given):
    if given is not None:
        return given
    try:
        return open_paired_dataset(cfg.dataset, split, **cfg.dataset_options)
    except DataError:
        if split == "train":
            raise
        logger.warning("no %s split: %s", split, "best-step selection is off" if split == "val" else "no test numbers")
        return None


class _Ridge:
    """``baseline_ridge_clip`` beside the encoder: ridge from the binned train EEG to the train images' CLIP
    embeddings (penalty by 3-fold cross-validation grouped by image, on train), scored with the same retrieval on
    val and test."""

    def __init__(self, features: list, ids: np.ndarray, train_embeds: torch.Tensor):
        self.reg = fit_ridge(np.concatenate(features), train_embeds[ids].numpy(), groups=ids.tolist())

    def score(self, features: list, ids: np.ndarray, candidates: torch.Tensor) -> dict:
        pred = torch.from_numpy(self.reg.predict(np.concatenate(features))).float()
        r = retrieval_accuracy(pred, candidates, top_k=(1, 5), targets=ids.tolist())
        return {"top1": r["retrieval_top1"], "top5": r["retrieval_top5"], "n_way": r["retrieval_n_way"],
                "ridge_alpha": float(self.reg.alpha_)}


def _data(cfg: AlignConfig, model: AlignedEncoder, clip, train_ds, val_ds) -> dict:
    """Train and val in memory, the train targets, the val candidates, CLIP's embedding length and the ridge."""
    feats_tr, feats_va = ([], []) if cfg.baseline else (None, None)
    x_tr, id_tr, img_tr = collect_split(train_ds, model.prepare, features=feats_tr)
    data = {"train": (x_tr, id_tr), "train_images": len(img_tr), "val": None,
            "targets": train_targets(img_tr, clip.model, clip.processor, cfg)}
    plain_tr = clip_embed(img_tr, clip.model, clip.processor) if cfg.baseline else None
    if val_ds is not None and len(val_ds):
        x_va, id_va, img_va = collect_split(val_ds, model.prepare, features=feats_va)
        raw = clip_embed(img_va, clip.model, clip.processor)
        data["val"], data["scale"] = (x_va, id_va, raw), float(raw.norm(dim=-1).mean())
    else:
        data["scale"] = float(clip_embed(img_tr[:256], clip.model, clip.processor).norm(dim=-1).mean())
    data["ridge"] = _Ridge(feats_tr, id_tr, plain_tr) if cfg.baseline else None
    if data["ridge"] is not None and data["val"] is not None:
        data["ridge_val"] = data["ridge"].score(feats_va, data["val"][1], data["val"][2])
    return data



def _train_and_save(cfg: AlignConfig, model, clip, data: dict, tmp: Path, test_dataset, t0: float,
                    t_data: float) -> dict:
    """Train, then write config, metrics, the model and its summary into ``tmp`` (align's staged folder)."""
    atomic_write_json(tmp / CONFIG_FILE, cfg.to_dict())
    start = ridge_start(model, data["train"], data["targets"]) if cfg.init_ridge else None
    best = train_loop(model, cfg, data["train"], data["targets"], data["val"], JsonlLog(tmp / METRICS_FILE))
    model.eval()
    atomic_save_pretrained(model, tmp)
    summary = {"val": best if data["val"] is not None else None, "selected_step": best.get("step"),
               "chosen_on": "val retrieval top-1, then top-5" if cfg.select == "best" and data["val"] else "last step",
               "baseline_ridge_clip": {"val": data.get("ridge_val")} if cfg.baseline else None,
               "init_ridge": start, "train_trials": int(len(data["train"][0])), "train_images": data["train_images"],
               "parameters": sum(p.numel() for p in model.parameters()), "seconds_data": round(t_data, 2)}
    if cfg.report_test:
        summary["test"] = _test_numbers(cfg, model, clip, test_dataset, data["ridge"], summary)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(tmp / SUMMARY_FILE, summary)
    return summary


def align(config: AlignConfig, train_dataset=None, val_dataset=None, test_dataset=None) -> Path:
    """Train an aligned encoder; return its folder (``config.output``). Datasets given here replace ``config.dataset``."""
    cfg = config
    cfg.validate()
    t0 = time.perf_counter()
    out = Path(cfg.output)
    if (out / SUMMARY_FILE).exists() or (out / "config.json").exists():
        raise ConfigError("this folder holds an earlier align run; choose another --output", out)
    check_output_folder(out)  # the one output-folder policy (core.files): checked before anything loads
    seed_everything(cfg.seed)
    train_ds, val_ds = _open(cfg, "train", train_dataset), _open(cfg, "val", val_dataset)
    if len(train_ds) < 2:
        raise DataError("the train split has fewer than 2 pairs", cfg.dataset)
    clip = load_clip(cfg.clip)
    clip.model.eval().requires_grad_(False)
    eeg0 = torch.as_tensor(train_ds[0]["eeg"])
    if eeg0.ndim != 2:
        raise DataError(f"dataset EEG items must be [channels, samples], got {tuple(eeg0.shape)}", cfg.dataset)
    model = build_model(cfg, train_ds, int(eeg0.shape[0]), int(eeg0.shape[1]), int(clip.model.config.projection_dim))
    data = _data(cfg, model, clip, train_ds, val_ds)
    model.register_to_config(target_scale=data["scale"])
    t_data = time.perf_counter() - t0
    # Written into a temporary sibling, renamed to --output when complete: a killed run leaves nothing there.
    with staged_folder(out) as tmp:
        summary = _train_and_save(cfg, model, clip, data, tmp, test_dataset, t0, t_data)
        # how a recording becomes this encoder's input (pipelines built on it copy it)
        atomic_write_json(tmp / PREPROCESSING_FILE, preprocessing_record(train_ds, cfg.dataset))
    v = summary["val"] or {}
    logger.info("align: val top-1 %s top-5 %s (step %s) in %.1f s -> %s", v.get("top1"), v.get("top5"),
                summary["selected_step"], summary["seconds"], out)
    return out


def _test_numbers(cfg: AlignConfig, model: AlignedEncoder, clip, given, ridge, summary: dict) -> dict | None:
    test_ds = _open(cfg, "test", given)
    if test_ds is None or not len(test_ds):
        return None
    feats = [] if ridge is not None else None
    x, ids, images = collect_split(test_ds, model.prepare, features=feats)
    candidates = clip_embed(images, clip.model, clip.processor)
    if ridge is not None:
        summary["baseline_ridge_clip"]["test"] = ridge.score(feats, ids, candidates)
    return retrieval(model, (x, ids), candidates)


__all__ = ["AlignConfig", "BENCHMARK_SETTINGS", "align", "train_loop", "collect_split", "clip_embed", "train_targets", "build_model",
           "retrieval", "adaptive_levels", "ridge_start"]
