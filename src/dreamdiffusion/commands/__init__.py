"""CLI command groups. Each module defines ``register(app)``; keep them thin wrappers.

The command line imports a command's module only when that command runs or shows its help (most pull in torch and
diffusers: seconds). :data:`COMMANDS` says, without importing anything, which module registers each command and the
line ``dreamdiffusion --help`` lists for it (the test suite checks that it is the command's own first line).
"""

# name -> (module that registers it, its one-line help); in the order --help lists them
COMMANDS = {
    "pretrain": ("pretrain", "Stage A: pretrain the EEG encoder by masked signal modeling (on Accelerate; "
                             "`accelerate launch` for many GPUs)."),
    "align": ("align", "Contrastive EEG-CLIP alignment: train an EEG encoder + projector against frozen CLIP image "
                       "embeddings."),
    "finetune": ("finetune", "Stage B: fine-tune Stable Diffusion on EEG-image pairs with CLIP alignment (Accelerate)."),
    "generate": ("generate", "Generate images from EEG with a fine-tuned DreamDiffusionPipeline."),
    "evaluate": ("evaluate", "Score a model on a held-out split: n-way top-1, retrieval top-1/5, SSIM, PCC (+ FID/IS "
                             "if local)."),
    "demo": ("demo", "Run the whole method on the built-in digits benchmark and write metrics.json and report.md."),
    "ablate": ("demo", "The structure of the paper's Table 1 on the built-in benchmark: MSM x CLIP x encoder size, "
                       "mask ratio."),
    "app": ("app_cmd", "Serve the web app: upload EEG (or pick a benchmark sample), choose a window, generate images."),
    "stream": ("stream", "Read an LSL EEG stream and write an image on every marker or interval."),
    "data": ("data", "EEG files: inspect them, build a pretraining corpus, write a sample recording."),
}


def command_module(name: str) -> str:
    """The full name of the module that registers command ``name``."""
    return f"{__name__}.{COMMANDS[name][0]}"
