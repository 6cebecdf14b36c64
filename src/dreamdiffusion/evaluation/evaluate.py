"""``dreamdiffusion evaluate``: generate for a held-out split (or read generated images) and score them.

This is the only code path that reads the **test** split; model selection happens on val during fine-tuning.

Outputs in ``--output`` (all written atomically): ``metrics.json`` (every number plus the protocol and the
resolved config), ``metrics.md`` (the table), ``samples.png`` (ground truth beside samples), ``samples/`` (the
generated PNGs) with ``samples/manifest.json`` (so ``--generated`` can re-score them without generating again).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from dreamdiffusion.conditioning import conditioning_record, plan_conditioning, recorded_setting
from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.core.files import (
    atomic_write_json,
    atomic_write_text,
    check_output_folder,
    staged_folder,
)
from dreamdiffusion.data.pairs import open_paired_dataset
from dreamdiffusion.evaluation import baselines as B
from dreamdiffusion.evaluation import metrics as M
from dreamdiffusion.evaluation.classifier import BUILTIN_CLASSIFIER, DEFAULT_IMAGENET_CLASSIFIER, ImageClassifier
from dreamdiffusion.evaluation.figures import comparison_grid, fmt, metrics_markdown
from dreamdiffusion.evaluation.samples import SAMPLES_DIR, read_samples, save_samples
from dreamdiffusion.generation import draw_images, load_pipeline, steering
from dreamdiffusion.models.hub import clip_image_embeds, load_clip

logger = logging.getLogger(__name__)



@dataclass
class EvaluateConfig:
    """Everything ``evaluate`` needs; written beside the metrics so a result can be reproduced from its folder."""

    output: str  # folder for metrics.json, metrics.md, samples.png, samples/
    model: str | None = None  # a pipeline folder (or a finetune output folder holding pipeline/), or an aligned encoder
    conditioning: str = "auto"  # auto | tokens | ip-adapter (conditioning.plan_conditioning)
    ip_adapter: str | None = None  # the adapter of an ip-adapter pipeline built on the fly (default builtin-tiny)
    dataset: str = "synthetic"  # paired dataset name (see dreamdiffusion.data.pairs)
    dataset_options: dict = field(default_factory=dict)  # its path options (root, eeg, splits, images, subject ...)
    split: str = "test"  # the held-out split scored here
    generated: str | None = None  # score the images in this folder (generate/evaluate output) instead of generating
    classifier: str | None = None  # judge: hub id or folder; None = builtin-tiny on synthetic, else the ImageNet default
    clip: str | None = None  # CLIP for retrieval; None = the one the model was fine-tuned with (finetune_config.json)
    n_way: int = 50  # n-way of the semantic accuracy, capped at the judge's class count
    trials: int = 50  # random trials per generated image
    num_images: int = 5  # samples per EEG
    candidates: int = 1  # best-of-N: draw N per sample, keep the closest to the EEG's prediction (ranked by `clip`)
    clip_guidance: float = 0.0  # CLIP guidance toward that prediction (share of the latents' norm per step; 0: off)
    clip_guidance_steps: int = 1  # its moves per sampler step, the gradient read again before each
    steps: int = 25  # sampler steps
    guidance: float = 1.0  # classifier-free guidance scale (1 = none, as in the paper)
    scheduler: str | None = None  # dpm | pndm | ddim | euler; None = the pipeline's own
    seed: int = 0  # seeds sampling noise and the n-way trials
    limit: int | None = None  # score only the first N EEGs of the split
    classes: list[str] | None = None  # score only these labels / WordNet ids (e.g. the Brain2Image grid)
    batch_size: int = 16  # EEGs per generation batch
    retrieval_n_way: int | None = None  # None = all test images are candidates (THINGS-EEG2: 200-way)
    fid: bool = True  # FID/IS when the Inception weights are on disk (never downloaded)
    device: str | None = None  # cpu | cuda | cuda:1 ...; None: CUDA when present, else CPU
    # baselines beside the method (evaluation/baselines.py): ridge -> class lookup, ridge -> CLIP embedding
    baselines: bool = True
    base: str | None = None  # the class lookup's base (and a built pipeline's); None: the one the model draws with
    baseline_guidance: float | None = None  # the class lookup's guidance; None = the method's
    baseline_train_limit: int | None = None  # fit the ridges on the first N train pairs only (None: all)
    # fit them on this share of the train images, drawn with `seed` as `finetune --train-fraction` draws them
    baseline_train_fraction: float = 1.0
    overwrite: bool = False  # replace a non-empty output folder (the one output-folder policy, core.files)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- inputs

def item_classes(item: dict) -> set[str]:
    """Names an item answers to in ``--classes``: its label and, for ImageNet-style names, the WordNet id."""
    names = set()
    if item.get("label") is not None:
        names.add(str(item["label"]))
    name = str(item.get("image_name") or "")
    if name.startswith("n") and "_" in name:
        names.add(name.split("_")[0])  # EEGCVPR40: n02690373_1234 -> n02690373
    return names


def load_items(dataset: str, split: str, options: dict, limit: int | None = None,
               classes: Sequence[str] | None = None) -> list[dict]:
    """Items of a paired dataset split (dicts with ``eeg``, ``image``, ``label``, ``image_name`` ...).

    ``classes`` keeps only items of those labels / WordNet ids (the Brain2Image comparison grid: airliner
    n02690373, jack-o'-lantern n03590841, giant panda n02510455); ``limit`` then keeps the first N.
    """
    ds = open_paired_dataset(dataset, split, **options)
    wanted = set(classes or ())
    items = []
    for i in range(len(ds)):
        if limit is not None and len(items) >= limit:
            break
        item = ds[i]
        if wanted and not (item_classes(item) & wanted):
            continue
        items.append(item)
    if not items:
        which = f" for classes {sorted(wanted)}" if wanted else ""
        raise DataError(f"the {split!r} split of dataset {dataset!r} has no items{which}")
    return items


def resolve_classifier_name(config: EvaluateConfig) -> str:
    if config.classifier:
        return config.classifier
    return BUILTIN_CLASSIFIER if config.dataset == "synthetic" else DEFAULT_IMAGENET_CLASSIFIER


def finetune_setting(model: str | os.PathLike | None, key: str) -> str | None:
    """A setting (``clip``, ``base``) a model was trained with: :func:`dreamdiffusion.conditioning.recorded_setting`
    (``finetune_config.json`` or, for an aligned encoder, ``align_config.json``, beside or above it)."""
    return recorded_setting(model, key)


def find_clip_for_model(model: str | os.PathLike | None) -> str | None:
    """The ``--clip`` a model was trained against (``finetune_config.json`` / ``align_config.json``)."""
    return finetune_setting(model, "clip")


def generate_samples(pipe, eegs: Sequence[torch.Tensor], num_images: int, steps: int, guidance: float, seed: int,
                     batch_size: int = 16, progress: bool = True, candidates: int = 1,
                     ranker=None, guidance_clip=None) -> list[list[Image.Image]]:
    """``num_images`` PIL images per EEG window: :func:`dreamdiffusion.generation.draw_images` (the one sampler)."""
    return draw_images(pipe, eegs, num_images, steps, guidance, seed, batch_size=batch_size, progress=progress,
                       candidates=candidates, ranker=ranker, guidance_clip=guidance_clip)


def truth_clip_embeddings(clip_spec: str, images: Sequence[Image.Image], device: str | torch.device = "cpu",
                          batch_size: int = 64) -> torch.Tensor:
    """CLIP ``image_embeds`` of the ground-truth images (:func:`dreamdiffusion.models.hub.clip_image_embeds`), on the CPU."""
    clip = load_clip(clip_spec)
    clip.model.eval().to(device)
    return clip_image_embeds(images, clip.model, clip.processor, batch_size=batch_size).cpu()


def eeg_clip_embeddings(pipe, eegs: Sequence[torch.Tensor], batch_size: int = 64) -> torch.Tensor:
    out = []
    for start in range(0, len(eegs), batch_size):
        chunk = torch.stack([torch.as_tensor(e, dtype=torch.float32) for e in eegs[start:start + batch_size]])
        out.append(pipe.encode_eeg(chunk)[1].float().cpu())
    return torch.cat(out)


# ----------------------------------------------------------------------------------------------- scoring

def compute_metrics(
    ground_truth: Sequence[Image.Image],
    samples: Sequence[Sequence[Image.Image]],
    classifier: ImageClassifier,
    n_way: int = 50,
    trials: int = 50,
    seed: int = 0,
    labels: Sequence[int] | None = None,
    eeg_embeds: torch.Tensor | None = None,
    image_embeds: torch.Tensor | None = None,
    retrieval_n_way: int | None = None,
    fid: bool = True,
    image_ids: Sequence | None = None,
    gen_image_embeds: torch.Tensor | None = None,
    classes: Sequence | None = None,
    with_ssim: bool = True,
) -> dict:
    """Every metric of the paper's protocol for N EEGs (each with its ground truth) and S samples each.

    ``labels`` (dataset labels in the judge's label space) adds ``judge_accuracy_real``: the judge's own accuracy
    on the real images, which bounds what the semantic accuracy can mean. ``image_ids`` (one per EEG, e.g. the
    image file name) tells which EEGs are repeated trials of one image: retrieval, SSIM and PCC then compare each
    EEG with the *distinct* images (a copy of the own image must not count as a competitor).
    ``image_embeds [N, P]``: CLIP embeddings of each EEG's ground truth; with ``gen_image_embeds [N, S, P]`` (of
    the generated images) they add ``clip_2way`` and ``clip_within_class_2way``. ``classes`` (one per EEG, e.g.
    the dataset labels; default: the judge's class of the ground truth) defines "the same class" of the
    within-class 2-way (:func:`~dreamdiffusion.evaluation.metrics.within_class_identification`), also in pixels.
    """
    n = len(ground_truth)
    if n != len(samples) or n == 0:
        raise ValueError(f"need one list of samples per ground truth, got {n} and {len(samples)}")
    s = min(len(x) for x in samples)
    if s == 0:
        raise ValueError("every ground truth needs at least one generated sample")
    samples = [list(x[:s]) for x in samples]
    size = samples[0][0].size
    # The paper scores generated and ground-truth images at one size (its 512 px); here: the generated size.
    gt_resized = [g.convert("RGB").resize(size, Image.BICUBIC) if g.size != size else g.convert("RGB")
                  for g in ground_truth]

    gt_scores = classifier.logits(gt_resized)
    gen_scores = classifier.logits([img for row in samples for img in row]).reshape(n, s, -1)
    way = M.default_n_way(classifier.num_classes, n_way)
    if way != n_way:
        logger.info("n-way capped at %d: the judge knows %d classes", way, classifier.num_classes)
    gen = torch.Generator().manual_seed(int(seed))
    semantic = M.semantic_accuracy(gen_scores, gt_scores, n_way=way, num_trials=trials, top_k=1, generator=gen)
    result: dict = {
        "top1_accuracy": semantic["top1_accuracy"],
        "top1_accuracy_max": semantic["top1_accuracy_max"],
        "chance": semantic["chance"],
        "n_way": semantic["n_way"],
        "num_trials": semantic["num_trials"],
        "top1_accuracy_per_slot": semantic["per_slot"],
        "num_eeg": n,
        "num_images": s,
        "classifier": classifier.name,
    }
    if labels is not None:
        result["judge_accuracy_real"] = M.classification_accuracy(gt_scores, labels)
        # How often the judge's class for the ground truth equals the dataset label (the protocol's "true class").
        result["generated_label_accuracy"] = M.classification_accuracy(
            gen_scores.reshape(n * s, -1), torch.as_tensor(labels).repeat_interleave(s))
    distinct, targets = distinct_images(image_ids, n)
    result.update(_retrieval(eeg_embeds, image_embeds, distinct, targets, retrieval_n_way, trials, seed))
    classes = [str(c) for c in (classes if classes is not None else gt_scores.argmax(dim=1).tolist())]
    truth_classes = [classes[i] for i in distinct]
    result["num_distinct_images"] = len(distinct)
    if gen_image_embeds is not None and image_embeds is not None:
        result.update(M.clip_identification(gen_image_embeds, image_embeds[distinct], targets, truth_classes))
    if eeg_embeds is not None and image_embeds is not None and len(distinct) >= 2:
        # the EEG's predicted CLIP embedding itself, scored as baseline_ridge_clip scores the ridge's (like for like;
        # the clip_* keys above score the generated images, after the generator)
        own = M.clip_identification(eeg_embeds, image_embeds[distinct], targets, truth_classes)
        result.update({"embed_2way": own["clip_2way"], "embed_within_class_2way": own["clip_within_class_2way"]})
    result.update(M.low_level_metrics(samples, [gt_resized[i] for i in distinct], targets=targets,
                                      classes=truth_classes, with_ssim=with_ssim))
    if fid:
        result.update(M.fid_and_is([img for row in samples for img in row], gt_resized))
    return result


def _retrieval(eeg_embeds, image_embeds, distinct: list[int], targets: list[int], retrieval_n_way: int | None,
               trials: int, seed: int) -> dict:
    """EEG -> image retrieval top-1/5 against the distinct images (None without both embeddings or with one EEG)."""
    if eeg_embeds is None or image_embeds is None or len(targets) < 2:
        return {"retrieval_top1": None, "retrieval_top5": None}
    retrieval = M.retrieval_accuracy(eeg_embeds, image_embeds[distinct], top_k=(1, 5), n_way=retrieval_n_way,
                                     num_trials=trials, generator=torch.Generator().manual_seed(int(seed) + 1),
                                     targets=targets)
    return {**retrieval, "retrieval_chance_top5": min(1.0, 5 / retrieval["retrieval_n_way"])}


def distinct_images(image_ids: Sequence | None, n: int) -> tuple[list[int], list[int]]:
    """``(first EEG index of each distinct image, each EEG's position in that list)``; None: all distinct."""
    if image_ids is None:
        return list(range(n)), list(range(n))
    if len(image_ids) != n:
        raise ValueError(f"need one image id per EEG ({n}), got {len(image_ids)}")
    first: dict = {}
    targets = [first.setdefault(key, len(first)) for key in image_ids]
    distinct = [0] * len(first)
    for i in reversed(range(n)):
        distinct[targets[i]] = i
    return distinct, targets


# ----------------------------------------------------------------------------------------------- the command

def evaluate(config: EvaluateConfig, progress: bool = True) -> dict:
    """Generate (or read) images for ``config.split``, score them, and write the outputs. Returns the metrics."""
    if config.model is None and config.generated is None:
        raise ConfigError("evaluate needs --model (to generate) or --generated (a folder of generated images)")
    if config.num_images < 1 or config.trials < 1 or config.n_way < 2:
        raise ConfigError("--num-images and --trials must be at least 1 and --n-way at least 2")
    check_output_folder(config.output, config.overwrite)
    if config.generated is not None and Path(config.generated).resolve() == Path(config.output).resolve():
        raise ConfigError("--output must differ from --generated (the scores go beside, not over, the images)",
                          config.output)
    if config.model is not None:  # a route that cannot be taken is refused before any data is read
        plan_conditioning(config.model, config.conditioning, None, config.ip_adapter)
    # The one output-folder policy: the run writes a temporary sibling, renamed to --output when complete.
    with staged_folder(config.output, config.overwrite) as out_dir:
        result = _evaluate_into(config, out_dir, progress)
    logger.info("top-1 (%d-way) %.3f (chance %.3f); retrieval top-1 %s; SSIM %.3f; PCC %.3f  -> %s",
                result["n_way"], result["top1_accuracy"], result["chance"], fmt(result.get("retrieval_top1")),
                result["ssim"], result["pcc"], Path(config.output) / "metrics.json")
    return result


def _evaluate_into(config: EvaluateConfig, out_dir: Path, progress: bool) -> dict:
    """The body of :func:`evaluate`, writing into ``out_dir``."""
    t0 = time.perf_counter()

    items = load_items(config.dataset, config.split, config.dataset_options, config.limit, config.classes)
    eegs = [torch.as_tensor(it["eeg"], dtype=torch.float32) for it in items]
    ground_truth = [it["image"] for it in items]

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = None
    if config.model is not None:
        plan = plan_conditioning(config.model, config.conditioning, None, config.ip_adapter)
        plan = dataclasses.replace(plan, base=config.base) if plan.built and config.base else plan  # --base: both uses
        pipe = load_pipeline(plan, config.scheduler, device=device)

    clip_spec = config.clip or find_clip_for_model(config.model)
    ranker, guide = (None, None) if config.generated else steering(config.candidates, config.clip_guidance, clip_spec,
                                                                   config.model, device, config.clip_guidance_steps)
    if config.generated is not None:
        samples = read_samples(config.generated, len(items))
    else:
        samples = generate_samples(pipe, eegs, config.num_images, config.steps, config.guidance, config.seed,
                                   batch_size=config.batch_size, progress=progress, candidates=config.candidates,
                                   ranker=ranker, guidance_clip=guide)
        save_samples(samples, items, out_dir / SAMPLES_DIR,
                     {"model": os.fspath(config.model), "dataset": config.dataset, "split": config.split,
                      "seed": config.seed, "steps": config.steps, "guidance": config.guidance,
                      "candidates": config.candidates, "clip_guidance": config.clip_guidance,
                      "clip_guidance_steps": config.clip_guidance_steps, "scheduler": type(pipe.scheduler).__name__,
                      "low_level_strength": pipe.low_level_strength() if hasattr(pipe, "low_level_strength") else None,
                      "conditioning": conditioning_record(pipe)})

    classifier = ImageClassifier.load(resolve_classifier_name(config), device=device)
    clip = _ClipSide(clip_spec, pipe, eegs, items, samples, device, (ranker or guide).clip if ranker or guide else None)
    scoring = dict(classifier=classifier, n_way=config.n_way, trials=config.trials, seed=config.seed,
                   labels=_judge_labels(items, classifier, config), image_embeds=clip.image_embeds,
                   retrieval_n_way=config.retrieval_n_way, image_ids=item_image_ids(items), classes=_item_labels(items))
    result = compute_metrics(ground_truth, samples, eeg_embeds=clip.eeg_embeds, gen_image_embeds=clip.gen_embeds,
                             fid=config.fid, **scoring)
    if clip.note:
        result["retrieval_skipped"] = clip.note
    if config.baselines:
        result.update(_baselines(config, items, eegs, ground_truth, pipe, clip, scoring))
    if pipe is not None:
        result["conditioning"] = conditioning_record(pipe)
    result.update({"clip": clip_spec, "dataset": config.dataset, "split": config.split,
                   "seconds": round(time.perf_counter() - t0, 2), "config": config.to_dict()})

    titles = [f"{it.get('image_name', i)}" for i, it in enumerate(items)]
    comparison_grid(ground_truth, samples, out_dir / "samples.png", row_titles=titles,
                    title=f"{config.split}: ground truth | generated")
    atomic_write_text(out_dir / "metrics.md", f"# Evaluation: {config.dataset} / {config.split}\n\n"
                      + metrics_markdown(result))
    atomic_write_json(out_dir / "metrics.json", result, nonfinite_as_null=True)
    return result


class _ClipSide:
    """The CLIP embeddings evaluate needs, each computed once: the distinct ground truths (expanded to one row per
    EEG), the generated images, and the model's CLIP head on the EEG. ``embed`` is None without a CLIP model."""

    def __init__(self, clip_spec, pipe, eegs, items, samples, device, loaded=None):
        self.embed = self.image_embeds = self.gen_embeds = self.eeg_embeds = None
        self.note = None
        if clip_spec is None:
            self.note = ("retrieval skipped: no --clip given and none recorded in the model's finetune_config.json "
                         "or align_config.json")
            logger.info(self.note)
            return
        clip = loaded or load_clip(clip_spec)  # the ranker's CLIP when it has one: the same model, loaded once
        clip.model.eval().to(device)
        self.embed = lambda images: clip_image_embeds(images, clip.model, clip.processor, batch_size=64).cpu()
        distinct, targets = distinct_images(item_image_ids(items), len(items))
        self.image_embeds = self.embed([items[i]["image"] for i in distinct])[targets]
        s = min(len(x) for x in samples)
        self.gen_embeds = self.embed([img for row in samples for img in row[:s]]).reshape(len(samples), s, -1)
        if pipe is None:
            self.note = "retrieval needs --model (the EEG embeddings come from its CLIP head)"
            logger.info(self.note)
        else:
            self.eeg_embeds = eeg_clip_embeddings(pipe, eegs)


BASELINE_KEYS = ("top1_accuracy", "top1_accuracy_max", "generated_label_accuracy", "pcc", "pcc_2way", "clip_2way",
                 "clip_within_class_2way", "pcc_within_class_2way", "num_eeg")


def _baselines(config: EvaluateConfig, items, eegs, ground_truth, pipe, clip: _ClipSide, scoring: dict) -> dict:
    """``baseline_ridge_class`` and ``baseline_ridge_clip`` (:mod:`dreamdiffusion.evaluation.baselines`), scored
    exactly as the method: the same judge, trials, seeds, CLIP and distinct images."""
    try:
        train = B.load_train_pairs(config.dataset, config.dataset_options, "train", limit=config.baseline_train_limit,
                                   fraction=config.baseline_train_fraction, seed=config.seed)
    except (DataError, ValueError, OSError) as exc:
        reason = f"no train split to fit them on ({str(exc).splitlines()[0]})"
        return {"baseline_ridge_class": None, "baseline_ridge_class_skipped": reason,
                "baseline_ridge_clip": None, "baseline_ridge_clip_skipped": reason}
    distinct, targets = distinct_images(item_image_ids(items), len(items))
    labels = _item_labels(items)
    guidance = config.guidance if config.baseline_guidance is None else config.baseline_guidance
    test = B.TestSide(eegs=eegs, labels=labels, targets=targets,
                      distinct_classes=None if labels is None else [labels[i] for i in distinct],
                      truth_embeds=None if clip.image_embeds is None else clip.image_embeds[distinct],
                      num_images=config.num_images, steps=config.steps, guidance=guidance, seed=config.seed,
                      n_way_retrieval=config.retrieval_n_way, trials=config.trials,
                      scheduler_config=None if pipe is None else dict(pipe.scheduler.config),
                      method_eeg_embeds=clip.eeg_embeds, method_gen_embeds=clip.gen_embeds)

    def score(images, rows):
        """The method's scoring of the class-lookup images of EEGs ``rows`` (SSIM left out: its matrix is the
        costly part, and PCC already says what pixels say)."""
        pick = lambda values: None if values is None else [values[i] for i in rows]
        sub = {**scoring, "labels": pick(scoring["labels"]), "image_ids": pick(scoring["image_ids"]),
               "classes": pick(scoring["classes"]),
               "image_embeds": None if scoring["image_embeds"] is None else scoring["image_embeds"][rows]}
        gen = None if clip.embed is None else clip.embed([im for row in images for im in row]).reshape(
            len(images), len(images[0]), -1)
        m = compute_metrics([ground_truth[i] for i in rows], images, gen_image_embeds=gen, fid=False,
                            with_ssim=False, **sub)
        return {k: m.get(k) for k in BASELINE_KEYS} | {"guidance": guidance, "steps": config.steps}

    base = config.base or finetune_setting(config.model, "base") or \
        (None if pipe is None else conditioning_record(pipe).get("base"))  # a pipeline built on the fly: its base
    return B.run_baselines(train, test, base, clip.embed, score)


def _item_labels(items: Sequence[dict]) -> list[str] | None:
    """Each item's dataset label (as text), when every item has one: "the same class" of the within-class 2-way."""
    labels = [it.get("label") for it in items]
    return None if any(label is None for label in labels) else [str(label) for label in labels]


def item_image_ids(items: Sequence[dict]) -> list | None:
    """The image each EEG shows (its file name), when every item names one; None: treat all as distinct."""
    names = [it.get("image_name") for it in items]
    return None if any(name is None for name in names) else names


def _judge_labels(items: Sequence[dict], classifier: ImageClassifier, config: EvaluateConfig) -> list[int] | None:
    """Dataset labels, when they live in the judge's label space (the digit judge on the digit benchmark)."""
    labels = [it.get("label") for it in items]
    if any(label is None for label in labels):
        return None
    judge_is_builtin = resolve_classifier_name(config) == BUILTIN_CLASSIFIER
    if not (config.dataset == "synthetic" and judge_is_builtin):
        return None
    labels = [int(label) for label in labels]
    if not all(0 <= label < classifier.num_classes for label in labels):
        return None
    return labels


__all__ = ["EvaluateConfig", "evaluate", "compute_metrics", "generate_samples", "load_items", "item_classes",
           "item_image_ids", "distinct_images", "truth_clip_embeddings", "eeg_clip_embeddings", "find_clip_for_model",
           "finetune_setting", "BASELINE_KEYS"]
