"""The one atomic writer: bytes, text, JSON, PNG images, figures and whole model folders.

Everything the project persists goes through here, so a reader (or a crash) only ever sees the old
file or the new one, never half of either: data goes to a temporary name in the same folder, is
fsynced, and is then renamed over the target with ``os.replace`` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dreamdiffusion.core.errors import CheckpointError


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (POSIX); silently skipped where dirs cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder below ``root`` so the data is on disk before the rename."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(dirpath))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (a reader sees the old file or the new one, never half)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_pretrained(model: Any, directory: str | os.PathLike, **save_kwargs) -> Path:
    """``model.save_pretrained(directory)`` without ever leaving a half-written model there.

    The model is saved into a temporary sibling folder first. If ``directory`` does not exist yet,
    the whole folder is renamed into place. If it exists (the training output folder also holds
    ``checkpoints/``, logs and figures), each file is moved in with ``os.replace``, weights first
    and ``config.json`` last: ``from_pretrained`` needs the config, so a crash in between leaves
    the previous model loadable rather than a config pointing at missing weights.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        model.save_pretrained(tmp, **save_kwargs)
        _fsync_tree(tmp)
        if not directory.exists():
            os.replace(tmp, directory)
        else:
            names = sorted(p.name for p in tmp.iterdir())
            names.sort(key=lambda n: n.endswith(".json"))  # weights before configs
            for name in names:
                target = directory / name
                if target.is_dir() and not (tmp / name).is_dir():
                    raise CheckpointError(f"cannot replace folder {name!r} with a file", directory)
                if (tmp / name).is_dir() and target.exists():
                    shutil.rmtree(target)
                os.replace(tmp / name, target)
            shutil.rmtree(tmp, ignore_errors=True)
        _fsync_dir(directory)
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def atomic_write_png(path: str | os.PathLike, image) -> Path:
    """Save a PIL image as PNG atomically."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Render a matplotlib figure to PNG in memory, write it atomically, and close it if pyplot holds it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if getattr(fig.canvas, "manager", None) is not None:  # made by pyplot: release it from pyplot's registry
        import matplotlib.pyplot as plt

        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
