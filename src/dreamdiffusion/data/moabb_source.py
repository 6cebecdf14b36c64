"""MOABB datasets as a corpus source, through MOABB's own dataset classes.

``resolve_datasets("BNCI2014_001,Zhou2016")`` finds the classes by class name or by MOABB code
(``"BNCI2014-001"``), case- and punctuation-insensitive; ``moabb_recordings`` walks
``dataset.get_data([subject])`` one subject at a time (MOABB downloads to its own cache,
``~/mne_data`` by default), so memory holds one subject at a time. Dataset objects (anything with
``code``, ``subject_list`` and ``get_data``) are accepted as they are, which is how the tests pass
MOABB's ``FakeDataset`` without a network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator

from dreamdiffusion.core.errors import DataError
from dreamdiffusion.data.exclusions import is_excluded

logger = logging.getLogger(__name__)


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def _moabb():
    try:
        import moabb.datasets
        from moabb.datasets.utils import dataset_list
    except ImportError as exc:
        raise DataError(f"MOABB is not installed ({exc}); pip install 'dreamdiffusion[moabb]'") from None
    return moabb.datasets, dataset_list


def resolve_dataset(code_or_dataset):
    """A MOABB dataset instance from a class name, a MOABB code, or an instance (returned as is)."""
    if not isinstance(code_or_dataset, str):
        if not all(hasattr(code_or_dataset, a) for a in ("get_data", "subject_list")):
            raise DataError(f"{code_or_dataset!r} is not a MOABB dataset (needs get_data and subject_list)")
        return code_or_dataset
    code = code_or_dataset.strip()
    datasets, dataset_list = _moabb()
    cls = getattr(datasets, code, None)
    if isinstance(cls, type):
        return cls()
    want = _norm(code)
    for c in dataset_list:
        if _norm(c.__name__) == want:
            return c()
    # Codes (e.g. "BNCI2014-001") live on instances; build them only now, on a miss by name.
    for c in dataset_list:
        try:
            inst = c()
        except Exception:  # some classes need arguments; they cannot be named by code anyway
            continue
        if _norm(getattr(inst, "code", "")) == want:
            return inst
    close = sorted(c.__name__ for c in dataset_list if want[:4] and _norm(c.__name__).startswith(want[:4]))
    hint = f" (similar: {', '.join(close[:6])})" if close else " (see moabb.datasets for the names)"
    raise DataError(f"unknown MOABB dataset {code!r}{hint}")


def resolve_datasets(codes) -> list:
    """``"A,B"``, a list of codes, or dataset instances -> dataset instances."""
    if isinstance(codes, str):
        codes = [c for c in codes.split(",") if c.strip()]
    elif not isinstance(codes, Iterable):
        codes = [codes]
    out = []
    for c in codes:
        if isinstance(c, str) and "," in c:
            out.extend(resolve_dataset(x) for x in c.split(",") if x.strip())
        else:
            out.append(resolve_dataset(c))
    return out


def moabb_recordings(datasets: list, subjects: list[int] | None = None,
                     exclude: list[str] | None = None) -> Iterator[tuple]:
    """``(source, subject, dataset_code, loader)`` per run of every subject of every dataset.

    Subjects in ``exclude`` (``"4"``, ``"sub-4"`` or ``"<code>:4"``) are not even downloaded.
    A subject whose download or reading fails is yielded once with a loader that raises, so the
    corpus builder skips it with a warning (or stops, with ``strict``).
    """
    exclude = list(exclude or [])
    for ds in datasets:
        code = getattr(ds, "code", type(ds).__name__)
        subject_list = list(subjects) if subjects is not None else list(ds.subject_list)
        for subj in subject_list:
            label = f"sub-{subj}"
            if is_excluded(exclude, f"moabb:{code}/{label}", label, code) is not None:
                # the builder matches the same entry and records the exclusion; no download
                yield f"moabb:{code}/{label}", label, code, _excluded
                continue
            try:
                data = ds.get_data([subj])
            except Exception as exc:  # a download or parse failure of one subject
                msg = " ".join(str(exc).split())[:200]
                yield f"moabb:{code}/{label}", label, code, _raiser(f"MOABB get_data failed: {type(exc).__name__}: {msg}",
                                                                   f"moabb:{code}/{label}")
                continue
            for sess, runs in data.get(subj, {}).items():
                for run, raw in runs.items():
                    yield f"moabb:{code}/{label}/ses-{sess}/run-{run}", label, code, (lambda r=raw: r)
            del data


def _excluded():  # never called: the builder matches the subject before loading
    raise DataError("excluded")


def _raiser(message: str, source: str):
    def load():
        raise DataError(message, source)
    return load
