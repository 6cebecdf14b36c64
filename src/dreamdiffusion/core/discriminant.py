"""The class decoder in closed form: shrinkage LDA on time-binned EEG, the strongest simple decoder of the class.

Two users read the same fit: the ``ridge -> class`` baseline beside every evaluation reports its accuracy
(``lda_eeg_accuracy``, :mod:`~dreamdiffusion.evaluation.baselines`), and Stage B's class context
(``finetune --class-context``, :mod:`~dreamdiffusion.training.class_context`) starts its discriminant from it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Time bins per channel of the EEG features (the usual linear ERP decoder). 8 (55 ms at the paper's window) scored
# higher than 16 in the grouped cross-validation on train of the digits benchmark (seed 0: 0.963 vs 0.957) and
# makes the ridge search 6x cheaper.
N_BINS = 8


def fit_lda(features: np.ndarray, labels: Sequence):
    """Shrinkage LDA (Ledoit-Wolf) on ``features``, the labels as strings: scikit-learn's fitted model.

    Why: with ten classes, regression on the class-indicator columns (a ridge classifier) loses to the discriminant
    (on val at four benchmark seeds LDA named the digit 0.017-0.025 better; ``benchmarks/class_ceiling.py``).
    Its ``decision_function`` is linear (``coef_``, ``intercept_``) and ``predict_proba`` its softmax, so a torch
    ``Linear`` holds it exactly. Under a second on the built-in benchmark's 5,396 x 1,024 features.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    # scikit-learn's Ledoit-Wolf shrinkage standardises each feature before it shrinks, so the EEG's scale needs no care
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(np.asarray(features),
                                                                           [str(v) for v in labels])


__all__ = ["N_BINS", "fit_lda"]
