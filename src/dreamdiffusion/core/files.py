"""The one atomic writer: bytes, text, JSON, PNG images, figures and whole model folders.

Everything the project persists goes through here, so a reader (or a crash) only ever sees the old
file or the new one, never half of either: data goes to a temporary name in the same folder, is
fsynced, and is then renamed over the target with ``os.replace`` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from dreamdiffusion.core.errors import CheckpointError, ConfigError, DiskSpaceError


def _read_umask() -> int:
    """The process umask (read once: setting it to read it back is not thread-safe later on)."""
    old = os.umask(0o022)
    os.umask(old)
    return old


# Files and folders written here get the permissions any other new file gets (mkstemp/mkdtemp
# would leave them 0600/0700): 0666/0777 minus the user's umask.
_UMASK = _read_umask()
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


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
            os.fchmod(fh.fileno(), FILE_MODE)
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


def to_json(obj: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """``obj`` as strict JSON: NaN and Infinity are not JSON, so a value holding one is refused here
    (a ValueError naming the problem) instead of being written as a file other tools cannot read."""
    try:
        return json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"refusing to write non-JSON numbers (NaN/Infinity): {exc}") from None


def _finite_or_null(obj: Any) -> Any:
    if isinstance(obj, float) and not (obj == obj and abs(obj) != float("inf")):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any, nonfinite_as_null: bool = False) -> Path:
    """Write ``obj`` as indented JSON atomically (a reader sees the old file or the new one, never half).

    NaN/Infinity are not JSON: refused (``to_json``), or written as ``null`` with ``nonfinite_as_null`` (for
    measurements that may be undefined, such as a correlation of constant images)."""
    return atomic_write_text(path, to_json(_finite_or_null(obj) if nonfinite_as_null else obj) + "\n")


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
    os.chmod(tmp, DIR_MODE)
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


# ------------------------------------------------------------------------------ output folders
# The one policy of every command that writes a folder (generate, evaluate, build-corpus, demo):
# the run writes into a hidden sibling ``.NAME.partial-PID-XXXX``, which is renamed to ``NAME`` only
# when complete; an existing non-empty ``NAME`` is refused unless ``overwrite``; the folders a
# killed run left behind (its PID is gone) are removed by the next run. A reader of ``NAME`` thus
# sees the previous complete output or the new complete one, never a mix.
_PARTIAL, _OLD = "partial", "old"
_LEGACY_MIN_AGE_S = 3600  # ``NAME.tmp-*`` of older versions carry no PID: removed once this old


def _staging_prefix(output: Path, kind: str) -> str:
    return f".{output.name}.{kind}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process (or an odd number): leave its folder alone
    return True


def remove_stale_staging(output: str | os.PathLike) -> list[Path]:
    """Remove the temporary siblings of ``output`` that killed runs left behind; returns them.

    A ``.NAME.old-PID-*`` folder holds the previous output that a killed run had moved aside just
    before renaming its own into place: when ``NAME`` is missing it is put back instead.
    """
    output = Path(output)
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        return []
    removed = []
    for entry in sorted(parent.iterdir()):
        name = entry.name
        for kind in (_PARTIAL, _OLD):
            head = f".{output.name}.{kind}-"
            if not name.startswith(head):
                continue
            pid = name[len(head):].split("-", 1)[0]
            if not pid.isdigit() or _pid_alive(int(pid)):
                continue
            previous = entry / "previous"
            if kind == _OLD and previous.is_dir() and not output.exists():
                os.replace(previous, output)
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        if name.startswith(f"{output.name}.tmp-") and entry.is_dir():
            try:
                old = time.time() - entry.stat().st_mtime > _LEGACY_MIN_AGE_S
            except OSError:
                old = False
            if old:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def check_output_folder(output: str | os.PathLike, overwrite: bool = False, flag: str = "--output") -> Path:
    """Refuse an output folder that cannot work, before anything is loaded or computed.

    An existing file, an existing non-empty folder (unless ``overwrite``), a parent that cannot be
    created or written: each is one ``ConfigError`` naming the path.
    """
    output = Path(output)
    if output.exists() or output.is_symlink():
        if not output.is_dir():
            raise ConfigError(f"{flag} is an existing file, not a folder", output)
        if not overwrite and any(output.iterdir()):
            raise ConfigError(f"{flag} folder is not empty (pass --overwrite to replace it)", output)
    parent = output.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder for {flag}: {exc.strerror or exc}", output) from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {flag} here (permission denied)", output)
    return output


def require_free_space(folder: str | os.PathLike, nbytes: int, what: str) -> None:
    """Raise :class:`DiskSpaceError` naming ``folder`` unless its file system has ``nbytes`` free for ``what``.

    Called before a long write whose size is known up front. Why not just let the write fail: a memory-mapped
    array that runs out of disk kills the process with SIGBUS (no Python error, no clean-up of the staging
    folder), and a plain write fails minutes into the job.
    """
    folder = Path(folder)
    probe = next((p for p in (folder, *folder.absolute().parents) if p.exists()), folder)
    free = shutil.disk_usage(probe).free
    if free < nbytes:
        raise DiskSpaceError(f"{what} needs about {_gigabytes(nbytes)} of free disk, the file system has "
                             f"{_gigabytes(free)} (free some space or write elsewhere)", folder)


def _gigabytes(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GB" if nbytes >= 2**27 else f"{nbytes / 2**20:.0f} MB"


def begin_staging(output: str | os.PathLike, overwrite: bool = False, flag: str = "--output") -> Path:
    """Check ``output``, clear stale siblings, and return a fresh temporary sibling to write into."""
    output = check_output_folder(output, overwrite, flag)
    remove_stale_staging(output)
    tmp = Path(tempfile.mkdtemp(prefix=_staging_prefix(output, _PARTIAL), dir=output.absolute().parent))
    os.chmod(tmp, DIR_MODE)
    return tmp


def publish_folder(tmp: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Rename the complete ``tmp`` to ``output``; an existing ``output`` is moved aside first and then deleted."""
    tmp, output = Path(tmp), Path(output)
    _fsync_tree(tmp)
    old = None
    if output.exists() or output.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=_staging_prefix(output, _OLD), dir=output.absolute().parent))
        os.replace(output, old / "previous")
    os.replace(tmp, output)
    _fsync_dir(output.absolute().parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return output


@contextlib.contextmanager
def staged_folder(output: str | os.PathLike, overwrite: bool = False, flag: str = "--output") -> Iterator[Path]:
    """``with staged_folder(out, overwrite) as tmp:`` write the run into ``tmp``; ``out`` appears when the
    block ends without an error (then holding exactly what was written), and is left untouched otherwise."""
    tmp = begin_staging(output, overwrite, flag)
    try:
        yield tmp
        publish_folder(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
