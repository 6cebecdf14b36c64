"""What every paired dataset shares: split names, file-name checks, the model's input spec."""

from __future__ import annotations

from dataclasses import replace

from dreamdiffusion.data.transforms import InputSpec

SPLITS = ("train", "val", "test")


def plain_name(name: str) -> bool:
    """A file name that stays inside its folder: no separators, no '..', no NUL, not hidden.

    Names come from downloaded files; one like ``../../x`` must not reach outside the image folder.
    """
    return (isinstance(name, str) and 0 < len(name) <= 255 and not name.startswith(".")
            and not any(ch in name for ch in ("/", "\\", "\x00")))



def as_spec(spec: InputSpec | dict | None, **overrides) -> InputSpec:
    if spec is None:
        spec = InputSpec()
    elif isinstance(spec, dict):
        spec = InputSpec.from_dict(spec)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return replace(spec, **overrides) if overrides else spec
