"""CLI command groups. Each module defines ``register(app)``; keep them thin wrappers."""

from dreamdiffusion.commands import (
    align,
    app_cmd,
    data,
    demo,
    evaluate,
    finetune,
    generate,
    pretrain,
    stream,
)

ALL_COMMAND_MODULES = [data, pretrain, align, finetune, generate, evaluate, demo, app_cmd, stream]
