"""Generated images on disk: ``evaluate``'s ``samples/`` folder and what ``--generated`` reads back.

Both ``evaluate`` and ``generate`` write a ``manifest.json`` whose ``items`` list, in dataset order, names each
EEG's PNGs under ``images``; :func:`read_samples` reads either (and folders of older versions, which named them
``files``), so images drawn once can be scored again without the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from PIL import Image

from dreamdiffusion.core.errors import DataError
from dreamdiffusion.core.files import atomic_write_json, atomic_write_png
from dreamdiffusion.data.images import load_image

SAMPLES_DIR = "samples"
SAMPLES_MANIFEST = "manifest.json"


def save_samples(samples: Sequence[Sequence[Image.Image]], items: Sequence[dict], folder: Path, meta: dict) -> Path:
    """Write the generated PNGs and a manifest that ``read_samples`` (``--generated``) understands."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (imgs, item) in enumerate(zip(samples, items)):
        files = []
        for j, img in enumerate(imgs):
            name = f"{i:05d}_{j}.png"
            atomic_write_png(folder / name, img)
            files.append(name)
        # the item format of `generate`'s manifest: its image files under "images"
        entries.append({"index": i, "image_name": item.get("image_name"), "label": _as_int(item.get("label")),
                        "images": files})
    manifest = {**meta, "items": entries}
    atomic_write_json(folder / SAMPLES_MANIFEST, manifest)
    return folder


def _as_int(value):
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def read_samples(folder: str | os.PathLike, n_items: int) -> list[list[Image.Image]]:
    """Generated images of an earlier run: ``evaluate``'s ``samples/`` folder or a ``generate`` output folder.

    Both write a ``manifest.json`` with an ``items`` list in dataset order, each naming its ``images`` (relative
    to the folder; folders of older versions name them ``files``). The manifest must cover at least the EEGs
    scored here.
    """
    folder = Path(folder)
    if (folder / SAMPLES_DIR / SAMPLES_MANIFEST).is_file():
        folder = folder / SAMPLES_DIR
    manifest_path = folder / SAMPLES_MANIFEST
    if not manifest_path.is_file():
        raise DataError("no manifest.json here: pass the output folder of `dreamdiffusion generate` or of an "
                        "earlier `dreamdiffusion evaluate`", folder)
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["items"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"manifest is not valid (expected a JSON object with an 'items' list): {exc}",
                        manifest_path) from exc
    if len(entries) < n_items:
        raise DataError(f"manifest lists images for {len(entries)} EEGs but {n_items} are scored "
                        "(pass the same --limit and split as the run that generated them)", manifest_path)
    out = []
    for entry in entries[:n_items]:
        files = entry.get("images") or entry.get("files") or []
        if not files:
            raise DataError(f"manifest entry {entry.get('index')} lists no image files", manifest_path)
        out.append([load_image(folder / f) for f in files])
    return out


__all__ = ["SAMPLES_DIR", "SAMPLES_MANIFEST", "read_samples", "save_samples"]
