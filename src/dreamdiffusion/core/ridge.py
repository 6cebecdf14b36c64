"""Ridge maps fit on a train split with their penalty chosen on that split alone: the project's one ridge search.

The ridge baselines beside every evaluation (:mod:`~dreamdiffusion.evaluation.baselines`), ``align``'s ridge-CLIP
score, the linear probe of an encoder (:mod:`~dreamdiffusion.evaluation.probe`), the built-in benchmark's
``linear_baseline`` (:mod:`~dreamdiffusion.data.synthetic`) and ``benchmarks/channel_drop.py`` all fit through
:class:`RidgeSearch`. It lives on the ground floor, plain NumPy, so that every layer can call the same search.

The penalty is chosen by **leave-one-group-out** cross-validation: ``groups`` names the image each trial saw, and
all trials of an image are held out together, so the held-out score is that of an unseen image, as on val and test
(leaving one *trial* out, as scikit-learn's ``RidgeCV`` does, lets the other trials of its image leak into the
held-out prediction). No refit is needed: ridge with an unpenalised intercept is a linear smoother
``y_hat = H y``, and the residual of group ``g`` under the fit without ``g`` is ``(I - H_gg)^-1 (y_g - y_hat_g)``
(``H_gg``: the group's block of ``H``, a few rows square). One eigendecomposition of the centred Gram matrix gives
``H`` for every penalty and every target, so a search over 15 penalties costs about one fit (seconds for 5,000
trials x 2,000 features on one core; scikit-learn's ``RidgeCV`` took minutes in the demo).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

RIDGE_ALPHAS = np.logspace(-2, 5, 15)  # penalties tried, half a decade apart


@dataclass
class Ridge:
    """A fitted ridge map ``x -> x @ coef + intercept`` (and, for a classifier, its class names)."""

    coef: np.ndarray  # [F, K]
    intercept: np.ndarray  # [K]
    alpha: float  # the penalty chosen on train
    cv_scores: dict  # penalty -> held-out score (accuracy, or minus the mean squared error)
    classes: list | None = None  # classifier: the class (as str) of each output column

    @property
    def alpha_(self) -> float:  # scikit-learn's name, for callers written against RidgeCV
        return self.alpha

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = np.asarray(x, np.float64) @ self.coef + self.intercept
        return out if self.classes is None else np.asarray(self.classes, dtype=object)[out.argmax(axis=1)]


class RidgeSearch:
    """Ridge maps from ``x [N, F]``, penalty chosen by leave-one-group-out on ``x`` itself (module docstring).

    ``groups``: the image (any hashable key) of each row; None: every row its own group (leave-one-out). Build it
    once and :meth:`fit` several targets on the same ``x`` (the class and the CLIP embedding): the decomposition is
    shared. The smaller of ``F x F`` and ``N x N`` is decomposed.
    """

    def __init__(self, x: np.ndarray, groups: Sequence | None = None):
        x = np.asarray(x, np.float64)
        n = len(x)
        members = defaultdict(list)
        for row, g in enumerate(range(n) if groups is None else groups):
            members[g].append(row)
        if sum(map(len, members.values())) != n:
            raise ValueError(f"{n} rows but {sum(map(len, members.values()))} group labels")
        # Rows reordered so that groups of one size sit side by side: each size is one batch of [G, m] blocks.
        by_size = defaultdict(list)
        for rows in members.values():
            by_size[len(rows)].append(rows)
        self.order = np.array([r for m in sorted(by_size) for rows in by_size[m] for r in rows], dtype=np.int64)
        self.blocks = []  # (start, number of groups, size)
        start = 0
        for m in sorted(by_size):
            self.blocks.append((start, len(by_size[m]), m))
            start += m * len(by_size[m])
        self.n_groups = len(members)
        self.mx = x.mean(axis=0)
        self.xc = x[self.order] - self.mx
        if x.shape[1] <= n:  # F x F: the rows in the eigenbasis are xc @ V
            s, self.basis = np.linalg.eigh(self.xc.T @ self.xc)
            self.rows = self.xc @ self.basis
        else:  # N x N (more features than rows): xc @ V = U sqrt(s)
            s, self.basis = np.linalg.eigh(self.xc @ self.xc.T)
            self.rows = self.basis * np.sqrt(np.maximum(s, 0.0))
        self.evals = np.maximum(s, 0.0)
        self.primal = x.shape[1] <= n

    def _held_out_residuals(self, yc: np.ndarray, z: np.ndarray, alpha: float) -> np.ndarray:
        """``y - prediction of the fit without the row's group``, ``[N, K]`` (rows in ``self.order``)."""
        d = 1.0 / (self.evals + alpha)
        resid = yc - self.rows @ (z * d[:, None])
        out = np.empty_like(resid)
        n = len(resid)
        for start, count, m in self.blocks:
            part = slice(start, start + count * m)
            f = self.rows[part].reshape(count, m, -1)
            h = (f * d) @ f.transpose(0, 2, 1) + 1.0 / n  # [G, m, m]; 1/n: the intercept's share
            out[part] = np.linalg.solve(np.eye(m) - h, resid[part].reshape(count, m, -1)).reshape(count * m, -1)
        return out

    def _coef(self, yc: np.ndarray, z: np.ndarray, alpha: float) -> np.ndarray:
        d = 1.0 / (self.evals + alpha)
        if self.primal:
            return self.basis @ (z * d[:, None])
        return self.xc.T @ (self.basis @ ((self.basis.T @ yc) * d[:, None]))

    def fit(self, y, classify: bool = False, alphas: Sequence[float] = RIDGE_ALPHAS) -> Ridge:
        """Regression onto ``y [N, K]``, or with ``classify`` a ridge classifier on +-1 one-hot targets (as
        scikit-learn's RidgeClassifier). Score: held-out accuracy, or minus the held-out mean squared error; ties go
        to the larger penalty. Fewer than two groups: nothing to hold out, the largest penalty."""
        classes = None
        if classify:
            classes = sorted({str(v) for v in y})
            index = {c: k for k, c in enumerate(classes)}
            labels = np.array([index[str(v)] for v in y])
            y = -np.ones((len(labels), len(classes)))
            y[np.arange(len(labels)), labels] = 1.0
        y = np.asarray(y, np.float64).reshape(len(self.order), -1)[self.order]
        my = y.mean(axis=0)
        yc = y - my
        z = self.rows.T @ yc
        scores = {}
        for a in map(float, alphas):
            if self.n_groups < 2:
                scores[a] = 0.0
                continue
            held = self._held_out_residuals(yc, z, a)
            scores[a] = float(np.mean((y - held).argmax(1) == y.argmax(1)) if classify else -np.mean(held ** 2))
        alpha = max(scores, key=lambda a: (scores[a], a))
        coef = self._coef(yc, z, alpha)
        return Ridge(coef=coef, intercept=my - self.mx @ coef, alpha=alpha, cv_scores=scores, classes=classes)


def fit_ridge(x: np.ndarray, y, groups: Sequence | None = None, classify: bool = False) -> Ridge:
    """One ridge map (:class:`RidgeSearch`; build the search once when fitting several targets on one ``x``).

    ``groups`` None: every row its own group; pass the image of each trial when images repeat, or the penalty is
    chosen on trials whose image the fit has seen."""
    return RidgeSearch(x, groups).fit(y, classify)


__all__ = ["Ridge", "RidgeSearch", "fit_ridge", "RIDGE_ALPHAS"]
