"""Helpers shared by the dataclass configs (InputSpec, PretrainConfig, FinetuneConfig)."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from dreamdiffusion.core.errors import ConfigError

T = TypeVar("T")


def dataclass_from_dict(cls: type[T], data: dict, what: str) -> T:
    """Build ``cls`` from a JSON dict, refusing keys it does not know (``what`` names them in the error)."""
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {what}: {', '.join(unknown)}")
    return cls(**data)
