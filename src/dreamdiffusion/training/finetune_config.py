"""Stage B settings: :class:`FinetuneConfig`, every hyper-parameter of ``dreamdiffusion finetune`` in one place.

The loss, what trains and how runs resume are described in :mod:`dreamdiffusion.training.finetune`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dreamdiffusion.core.config import dataclass_from_dict
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models.conditioner import CLIP_HEADS
from dreamdiffusion.models.encoders import ARCHS

TOKENIZER_INITS = ("pretrained", "ridge")  # finetune --tokenizer-init (training/tokenizer_init.py)
ENCODER_NORMS = ("pretrained", "layernorm", "affine")  # finetune --encoder-norm
NULL_INITS = ("random", "base")  # finetune --null-init
WARMUP_SCHEDULES = ("constant", "cosine")  # finetune --clip-warmup-schedule

ALIGN_LOSSES = ("cosine", "contrastive")
TRAIN_MODES = ("paper", "lora", "encoder")
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "finetune_config.json"
PIPELINE_DIR = "pipeline"
BEST_FILE = "best_trainable.safetensors"
# --select-metric -> (the validation record's key, whether higher is better)
SELECT_METRICS = {"loss": ("val_loss", False), "mse": ("val_mse", False), "gen_clip": ("val_gen_clip_2way", True)}


@dataclass
class FinetuneConfig:
    """Every Stage B hyper-parameter in one place (paper defaults unless noted)."""

    output: str = "runs/finetune"  # output folder: pipeline/, checkpoints/, metrics.jsonl, loss.png
    dataset: str = "folder"  # paired dataset name (eegcvpr40, things-eeg2, folder, synthetic)
    dataset_options: dict = field(default_factory=dict)  # passed to open_paired_dataset (paths, subject, ...)
    # Train on this share of the train split's images (all their trials; drawn with `seed`, stratified by label):
    # the "few pairs" regime of the paper's claim. Val and test stay whole.
    train_fraction: float = 1.0
    encoder: str | None = None  # pretrained EEG encoder folder; None = random init (no-pretraining ablation)
    encoder_preset: str = "paper"  # size of a fresh msm encoder (encoder None)
    # EEG encoder architecture (models/encoders.py ARCHS): msm is the paper's transformer; the others (shallow,
    # eegnet, conformer, atcnet, linear) give their token sequence to the same mappers. None: msm, or with
    # `encoder` the architecture of that folder (which a given value must match).
    encoder_arch: str | None = None
    base: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # SD folder, hub id or builtin-tiny
    clip: str = "openai/clip-vit-large-patch14"  # CLIP vision folder, hub id or builtin-tiny
    train: str = "paper"  # paper | lora | encoder
    clip_weight: float = 1.0  # weight of 1 - cos(CLIP head, CLIP image embedding)
    # CLIP-alignment loss of the CLIP head (joint phase and warm-up): cosine = 1 - cos (the paper's), contrastive =
    # symmetric InfoNCE against the batch's images with a learnable temperature (the field since 2024; repeated
    # trials of one image are positives of each other). See training/contrastive.py.
    align: str = "cosine"
    align_cosine_weight: float = 0.0  # with align contrastive: + this x (1 - cos) to the own image (0: InfoNCE alone)
    cond_dropout: float = 0.1  # share of samples trained on the null-EEG context (enables guidance)
    time_conditioning: bool = True  # add pooled EEG context to the timestep embedding (paper)
    # Token mixtures the CLIP head reads (1: the paper's single pooled token; K > 1 gives a linear read-out K
    # temporal weightings, see models/conditioner.py). A new conditioner only; a fine-tuned one keeps its own.
    clip_pool_tokens: int = 1
    # Which training timesteps are drawn (diffusers' SDXL scripts' --timestep_bias_strategy): none (uniform, as
    # the paper), later (the noisiest `timestep_bias_portion` of the schedule drawn `timestep_bias_multiplier`
    # times as often: where the image's layout, i.e. what the EEG decides, is formed) or earlier (the least noisy).
    # Validation always draws uniformly, so val losses stay comparable.
    timestep_bias: str = "none"
    timestep_bias_multiplier: float = 2.0
    timestep_bias_portion: float = 0.25
    resolution: int | None = None  # image size; None = the base's native size (SD 1.5: 512)
    crop_ratio: float = 0.2  # random crop of (1 - ratio) of the side, resized back (paper)
    crop_prob: float = 0.5  # probability of that crop per training image (paper)
    batch_size: int = 25  # per process
    learning_rate: float = 5.3e-5  # constant (paper)
    lr_scheduler: str = "constant"  # any diffusers get_scheduler name
    lr_warmup_steps: int = 0
    # Encoder lr (None: learning_rate). Small noisy EEG sets: a lower encoder lr than the UNet's keeps
    # the joint loss from overwriting the CLIP alignment with memorised train trials.
    encoder_learning_rate: float | None = None  # 0: the encoder is frozen in the joint phase (trained in the warm-up)
    # UNet lr (attn2/norm2 or LoRA; None: learning_rate). The mappers, CLIP head, time conditioning and null
    # context start from random weights and keep learning_rate; the UNet's cross-attention starts trained.
    unet_learning_rate: float | None = None
    # CLIP-alignment warm-up: steps of encoder + CLIP head alone on 1 - cos(head, CLIP image_embeds),
    # before the diffusion loss starts (0 = off). The step with the best val cosine is kept.
    clip_warmup_steps: int = 0
    clip_warmup_learning_rate: float | None = None  # None: learning_rate
    # The encoder's rate in the warm-up (None: the warm-up's; 0: the encoder stays as Stage B starts it through the
    # warm-up). Why: Stage B's start (a ridge-started tokenizer, a fresh norm) costs the encoder's linear probe and the
    # warm-up wins part of it back, on val more at a lower rate than the head's (docs/finetune.md, "Other training knobs").
    clip_warmup_encoder_learning_rate: float | None = None
    # The warm-up's learning rate over its steps: constant (as before) | cosine (decays to 0 by the last step; the
    # val cosine then settles instead of wandering +-0.02 around its plateau at a constant rate).
    clip_warmup_schedule: str = "constant"
    # Keep the CLIP head (clip_pool, clip_proj) as the warm-up left it (its best val-cosine step) through the joint
    # phase; the joint phase's CLIP loss then trains the encoder alone. Why: trained on in the joint phase the head
    # drifts from CLIP (val cosine 0.591 after the warm-up -> 0.551 after 300 joint steps, benchmark seed 1), and the
    # context, the steering and retrieval all read it. Needs clip_warmup_steps.
    freeze_clip_head: bool = False
    # The CLIP head after the warm-up: pool = the paper's (the pooled tokens + Linear the warm-up trained); filters =
    # a new low-rank head fitted on the frozen warm-up encoder's tokens with InfoNCE + (1 - cos) from a ridge start
    # (training/clip_head_refit.py says why), clip_head_filters mixtures of the token features, the tokens averaged
    # into clip_head_bins time bins, clip_head_steps steps (~10-20 CPU-s on the built-in benchmark).
    clip_head: str = "pool"
    clip_head_filters: int = 8
    clip_head_bins: int = 16
    clip_head_steps: int = 1000
    # + this x InfoNCE among the batch's images of the own class only in the refit (training/contrastive.py; needs
    # labels): asks the head for what tells two images of one class apart. 0: off.
    clip_head_within_class_weight: float = 0.0
    # The fitted head's prior (--clip-head-prior HIDDEN; 0: off): the modern recipe's residual MLP (training/prior.py)
    # fitted after the head with MSE from its train predictions to their images' CLIP embeddings, clip_head_prior_steps
    # steps; the head's prediction then goes through it. Kept only where it raises the val pairs' CLIP cosine.
    clip_head_prior: int = 0
    clip_head_prior_steps: int = 1000
    # The EEG tokenizer's start (the paper's transformer): pretrained = as Stage A left it (the paper); ridge = the
    # leading spatial filters of the ridge map binned train EEG -> CLIP image embedding (training/tokenizer_init.py).
    tokenizer_init: str = "pretrained"
    # The encoder's last norm in Stage B: pretrained = as Stage A trained it (with or without, `pretrain
    # --no-final-norm`); layernorm = a fresh LayerNorm (identity at the start) where Stage A trained without one;
    # affine = a fresh per-feature affine map set from the train EEG's tokens (centred, unit spread) after the
    # tokenizer's start. Why: Stage A without the norm keeps the EEG's scales for a linear read-out
    # (docs/pretrain.md), and Stage B's heads and token mapper train on tokens of unit scale as they always did;
    # a LayerNorm divides each token by its own spread, which loses part of what a linear read-out finds, the
    # affine map does not.
    encoder_norm: str = "pretrained"
    # Caption contexts (0 = off, the paper): in the CLIP warm-up the token mapper learns to put out the base's own
    # context for the paired image's caption (a class-conditional base's class embedding; a Stable Diffusion base's
    # text-encoder output for the label), weighted by this against the CLIP loss. The mapper then starts the joint
    # phase speaking the UNet's language instead of from random weights (training/captions.py).
    caption_weight: float = 0.0
    # The CLIP head's prediction also enters every context token (models/conditioner.py; False: the paper).
    clip_context: bool = False
    # Class context (False: the paper): a shrinkage LDA on the train EEG's time-binned means, fitted in closed form
    # before the warm-up and held, reads each EEG's class posterior; the base's own context of each class (as
    # --caption-weight's), weighted by it, is added to the mapped context (models/class_reader.py). Needs labels.
    class_context: bool = False
    # The null context's start: random (small noise) | base (the base's own "no prompt" context).
    null_init: str = "random"
    weight_decay: float = 0.01  # AdamW default, as the reference
    max_grad_norm: float = 0.5  # gradient clipping (paper: 0.5)
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"  # no | fp16 | bf16
    max_steps: int | None = None  # optimizer steps; overrides epochs
    epochs: int = 500  # paper config
    lora_rank: int = 4
    lora_alpha: int = 4
    seed: int = 2022
    checkpoint_every: int = 500  # optimizer steps between resumable checkpoints (0 = only at the end)
    checkpoints_total_limit: int | None = 3
    resume: bool = False  # continue from the latest complete checkpoint in output/checkpoints
    validate_every: int = 500  # optimizer steps between validations on the val split (0 = only at the end)
    val_limit: int | None = 100  # val pairs used for val loss / cosine (None = all)
    validation_images: int = 4  # val EEGs drawn at each validation (0 = none)
    validation_inference_steps: int = 25
    guidance_scale: float = 3.0  # for validation images
    select: str = "best"  # best (on --select-metric) | last: which weights become the final pipeline
    # What "best" means: loss (val eps-MSE + clip_weight x CLIP loss, lower is better), mse (the diffusion
    # term alone) or gen_clip (val EEGs -> generated images -> CLIP image embeddings; the share of 2-way
    # identifications against the val ground truths that are right, higher is better). gen_clip judges the
    # images the model makes, which the losses do not: on the digits benchmark the val loss bottomed out at
    # step 100 of 400 while the generated images kept getting better. It costs a sampling run per validation
    # (select_images EEGs x validation_inference_steps, guidance_scale).
    select_metric: str = "loss"
    select_images: int = 64  # val EEGs generated for gen_clip (the first ones of the val split)
    skip_nonfinite: bool = False  # skip a batch with a NaN/Inf loss instead of stopping
    num_workers: int = 0  # data-loading workers

    def validate(self) -> None:
        if self.train not in TRAIN_MODES:
            raise ConfigError(f"--train must be one of {', '.join(TRAIN_MODES)}, got {self.train!r}")
        if self.encoder_arch is not None and self.encoder_arch not in ARCHS:
            raise ConfigError(f"--encoder-arch must be one of {', '.join(ARCHS)}, got {self.encoder_arch!r}")
        if self.select not in ("best", "last"):
            raise ConfigError(f"--select must be best or last, got {self.select!r}")
        if self.timestep_bias not in ("none", "later", "earlier"):
            raise ConfigError(f"--timestep-bias must be none, later or earlier, got {self.timestep_bias!r}")
        if not 0.0 < self.timestep_bias_portion <= 1.0 or self.timestep_bias_multiplier <= 0:
            raise ConfigError("--timestep-bias-portion must be in (0, 1] and --timestep-bias-multiplier positive")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(f"--select-metric must be one of {', '.join(SELECT_METRICS)}, got {self.select_metric!r}")
        if self.select_metric == "gen_clip" and self.select_images < 2:
            raise ConfigError(f"--select-images must be at least 2 for gen_clip, got {self.select_images}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"--mixed-precision must be no, fp16 or bf16, got {self.mixed_precision!r}")
        if not 1 <= self.clip_pool_tokens <= 4096:
            raise ConfigError(f"--clip-pool-tokens must be in [1, 4096], got {self.clip_pool_tokens}")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ConfigError(f"--cond-dropout must be in [0, 1), got {self.cond_dropout}")
        for name in ("batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.align not in ALIGN_LOSSES:
            raise ConfigError(f"--align must be one of {', '.join(ALIGN_LOSSES)}, got {self.align!r}")
        if self.align_cosine_weight < 0 or (self.align_cosine_weight and self.align != "contrastive"):
            raise ConfigError("--align-cosine-weight must be >= 0 and is for --align contrastive (cosine is 1 - cos "
                              f"alone), got {self.align_cosine_weight} with --align {self.align}")
        if self.tokenizer_init not in TOKENIZER_INITS:
            raise ConfigError(f"--tokenizer-init must be one of {', '.join(TOKENIZER_INITS)}, got {self.tokenizer_init!r}")
        if self.encoder_norm not in ENCODER_NORMS:
            raise ConfigError(f"--encoder-norm must be one of {', '.join(ENCODER_NORMS)}, got {self.encoder_norm!r}")
        if self.null_init not in NULL_INITS:
            raise ConfigError(f"--null-init must be one of {', '.join(NULL_INITS)}, got {self.null_init!r}")
        if self.caption_weight < 0:
            raise ConfigError(f"--caption-weight must be at least 0, got {self.caption_weight}")
        if self.caption_weight > 0 and not self.clip_warmup_steps:
            raise ConfigError("--caption-weight acts in the CLIP warm-up: set --clip-warmup-steps too")
        from diffusers.optimization import SchedulerType

        if self.lr_scheduler not in {t.value for t in SchedulerType}:
            raise ConfigError(f"--lr-scheduler must be one of {', '.join(t.value for t in SchedulerType)}, got "
                              f"{self.lr_scheduler!r}")
        if self.clip_warmup_schedule not in WARMUP_SCHEDULES:
            raise ConfigError(f"--clip-warmup-schedule must be one of {', '.join(WARMUP_SCHEDULES)}, got "
                              f"{self.clip_warmup_schedule!r}")
        if self.clip_warmup_steps < 0:
            raise ConfigError(f"--clip-warmup-steps must be >= 0, got {self.clip_warmup_steps}")
        if self.clip_head not in CLIP_HEADS:
            raise ConfigError(f"--clip-head must be one of {', '.join(CLIP_HEADS)}, got {self.clip_head!r}")
        if self.clip_head_steps < 1 or self.clip_head_bins < 1 or self.clip_head_filters < 0:
            raise ConfigError("--clip-head-steps and --clip-head-bins must be at least 1, --clip-head-filters at least 0")
        if self.clip_head_prior < 0 or self.clip_head_prior_steps < 1 or (self.clip_head_prior and self.clip_head == "pool"):
            raise ConfigError("--clip-head-prior needs --clip-head filters|eeg, a width >= 0 and --clip-head-prior-steps "
                              f">= 1 (got {self.clip_head_prior} x {self.clip_head_prior_steps} with --clip-head "
                              f"{self.clip_head})")
        if self.clip_head_within_class_weight < 0 or (self.clip_head_within_class_weight and self.clip_head == "pool"):
            raise ConfigError("--clip-head-within-class-weight must be >= 0 and applies to --clip-head filters|eeg "
                              f"(got {self.clip_head_within_class_weight} with --clip-head {self.clip_head})")
        if self.freeze_clip_head and not self.clip_warmup_steps:
            raise ConfigError("--freeze-clip-head keeps the head the CLIP warm-up trained: set --clip-warmup-steps too")
        for name in ("encoder_learning_rate", "unet_learning_rate", "clip_warmup_learning_rate",
                     "clip_warmup_encoder_learning_rate"):
            value = getattr(self, name)
            if value is None:
                continue
            if name in ("encoder_learning_rate", "clip_warmup_encoder_learning_rate"):  # 0: frozen (that phase)
                if value < 0:
                    raise ConfigError(f"{name} must be >= 0 (0 freezes the encoder), got {value}")
            elif value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("--max-steps must be at least 1")
        if self.max_steps is None and self.epochs < 1:
            raise ConfigError("--epochs must be at least 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FinetuneConfig":
        return dataclass_from_dict(cls, data, "finetune settings")


__all__ = ["FinetuneConfig", "TRAIN_MODES", "ALIGN_LOSSES", "SELECT_METRICS", "METRICS_FILE", "CONFIG_FILE", "PIPELINE_DIR", "BEST_FILE"]
