"""Keeping subjects and recordings out of a corpus (``--exclude``), e.g. the test subjects of a paired set.

An entry names a subject (``sub-04``, ``4`` for MOABB subject 4, ``BNCI2014-001:4`` for one
dataset's subject), a recording path, or a glob over paths (``*/sub-04/*``, ``*test*.edf``).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path

from dreamdiffusion.core.errors import DataError
from dreamdiffusion.data.io import eeg_extension


def read_exclusions(exclude: str | os.PathLike | Iterable[str] | None) -> list[str]:
    """Exclusion entries from a list and/or text files (one per line, ``#`` comments).

    An entry names a subject (``sub-04``, ``4`` for MOABB subject 4, ``BNCI2014-001:4`` for one
    dataset's subject), a recording path, or a glob over paths (``*/sub-04/*``, ``*test*.edf``).
    """
    if exclude is None:
        return []
    items = [exclude] if isinstance(exclude, (str, os.PathLike)) else list(exclude)
    out: list[str] = []
    for item in items:
        s = os.fspath(item)
        p = Path(s)
        if p.is_file() and p.suffix.lower() in (".txt", ".lst", ".list", ""):
            try:
                lines = p.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(f"cannot read exclusion list: {exc}", p) from None
            out.extend(ln.split("#", 1)[0].strip() for ln in lines)
        else:
            out.append(s)
    return [e for e in out if e]


def subject_of(path: Path) -> str:
    """A subject label for a file: the BIDS ``sub-XX`` entity of its path where there is one,
    else the file name without extension (files are then their own subject)."""
    for part in reversed(path.parts):
        for token in part.replace(".", "_").split("_"):
            if token.startswith("sub-") and len(token) > 4:
                return token
    name = path.name
    ext = eeg_extension(name)
    return name[: -len(ext)] if ext else path.stem


def is_excluded(entries: list[str], source: str, subject: str, dataset: str | None = None) -> str | None:
    """The entry that excludes this recording, or None."""
    src = source.replace(os.sep, "/")
    try:
        resolved = str(Path(source).resolve()).replace(os.sep, "/")
    except (OSError, RuntimeError):
        resolved = src
    name = src.rsplit("/", 1)[-1]
    for e in entries:
        e_norm = e.replace(os.sep, "/")
        if e in (subject, f"subject:{subject}"):
            return e
        if dataset is not None:
            # MOABB subjects are numbers: "4", "sub-4" and "<code>:4" all name subject 4
            bare = subject[4:] if subject.startswith("sub-") else subject
            if e in (bare, f"{dataset}:{subject}", f"{dataset}:{bare}"):
                return e
        if fnmatch.fnmatchcase(src, e_norm) or fnmatch.fnmatchcase(name, e_norm) or fnmatch.fnmatchcase(resolved, e_norm):
            return e
        try:
            if Path(e).exists() and Path(e).resolve() == Path(source).resolve():
                return e
        except (OSError, RuntimeError):
            pass
    return None


__all__ = ["read_exclusions", "subject_of", "is_excluded"]
