"""The one ridge search: its leave-one-group-out scores equal refits without each group, on known answers."""

import numpy as np
import pytest

from dreamdiffusion.core.ridge import RIDGE_ALPHAS, RidgeSearch, fit_ridge


def _refit_residuals(x, y, groups, alpha):
    """``y`` minus the prediction of a ridge refit without the row's group (the slow definition)."""
    groups, out = np.asarray(groups, dtype=object), np.zeros_like(y)
    for g in set(groups):
        keep = groups != g
        mx, my = x[keep].mean(0), y[keep].mean(0)
        xc = x[keep] - mx
        coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y[keep] - my))
        out[~keep] = y[~keep] - ((x[~keep] - mx) @ coef + my)
    return out


@pytest.mark.parametrize("n_features", [6, 50])  # fewer features than rows, and more (the N x N side)
def test_held_out_scores_equal_refits_without_each_group(n_features):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, n_features)), rng.standard_normal((30, 2))
    groups = [i // 3 for i in range(26)] + ["a", "a", "b", 7]  # groups of 3, 2 and 1 rows
    reg = RidgeSearch(x, groups).fit(y, alphas=[0.1, 10.0])
    for alpha in (0.1, 10.0):
        assert reg.cv_scores[alpha] == pytest.approx(-np.mean(_refit_residuals(x, y, groups, alpha) ** 2), rel=1e-9)
    xc = x - x.mean(0)
    coef = np.linalg.solve(xc.T @ xc + reg.alpha * np.eye(n_features), xc.T @ (y - y.mean(0)))
    np.testing.assert_allclose(reg.predict(x), xc @ coef + y.mean(0), atol=1e-9)


def test_known_answers():
    """An exact linear map is recovered at the least penalty; separable classes are read exactly."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 10))
    w = rng.standard_normal((10, 3))
    groups = np.repeat(np.arange(40), 3)  # 40 images x 3 trials
    search = RidgeSearch(x, groups)
    reg = search.fit(x @ w + 2.0)
    assert reg.alpha == min(RIDGE_ALPHAS)  # no noise: the least penalty predicts held-out images best
    np.testing.assert_allclose(reg.predict(x), x @ w + 2.0, atol=0.05)
    x[:, 0] += np.sign(x[:, 0])  # a margin: least squares on +-1 targets then separates them
    labels = np.where(x[:, 0] > 0, "pos", "neg")
    clf = RidgeSearch(x, groups).fit(labels, classify=True)
    assert clf.classes == ["neg", "pos"] and (clf.predict(x) == labels).mean() == 1.0
    assert clf.alpha_ == clf.alpha and max(clf.cv_scores.values()) > 0.9
    noise = fit_ridge(rng.standard_normal((120, 10)), rng.standard_normal((120, 1)), groups)
    assert noise.alpha == max(RIDGE_ALPHAS)  # nothing to read: the largest penalty
    assert fit_ridge(x, x @ w, groups=[0] * 120).alpha == max(RIDGE_ALPHAS)  # one group: nothing to hold out
    with pytest.raises(ValueError):
        RidgeSearch(x, groups[:-1])


def test_old_home_is_a_deprecated_alias_of_core_ridge():
    """evaluation.ridge (documented there until the search moved down to core) still imports, with a warning."""
    import importlib
    import sys

    sys.modules.pop("dreamdiffusion.evaluation.ridge", None)
    with pytest.warns(DeprecationWarning, match="dreamdiffusion.core.ridge"):
        old = importlib.import_module("dreamdiffusion.evaluation.ridge")
    assert old.RidgeSearch is RidgeSearch and old.fit_ridge is fit_ridge
