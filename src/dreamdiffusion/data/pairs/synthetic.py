"""The built-in synthetic benchmark as a paired dataset (``--dataset synthetic --root DIR``).

The benchmark itself (simulated brain, builder, :class:`SyntheticPairs`) lives in
:mod:`dreamdiffusion.data.synthetic`; this module only opens it the way the registry opens datasets.
"""

from __future__ import annotations

import os

from dreamdiffusion.core.errors import DataError
from dreamdiffusion.data.synthetic import SyntheticPairs


def open_synthetic(split: str = "train", root: str | os.PathLike | None = None,
                   subject: int | None = None) -> SyntheticPairs:
    if root is None:
        raise DataError("the synthetic dataset needs --root DIR (a folder made by build_benchmark)", None)
    return SyntheticPairs(root, split=split, subject=subject)


__all__ = ["SyntheticPairs", "open_synthetic"]
