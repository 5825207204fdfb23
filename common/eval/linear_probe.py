"""Linear probe: how linearly separable the frozen features are (the standard SSL yardstick)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:
    from common.data.dataset import Dataset
    from common.eval.protocol import EvalSplit


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    c: float = 1.0,
    max_iter: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Fit standardised multinomial logistic regression on train, score on test.

    Returns accuracy and macro-F1 on the test set. BLAS runs single-threaded: on a
    busy 2-core machine multi-threaded OpenBLAS spin-waits and this 0.5 s fit took 20 s.
    """
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("linear probe needs non-empty train and test sets")
    if len(np.unique(train_y)) < 2:
        raise ValueError("linear probe needs at least two classes in the training labels")
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, max_iter=max_iter, random_state=seed),
    )
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(train_x, train_y)
        pred = clf.predict(test_x)
    return {
        "accuracy": float(accuracy_score(test_y, pred)),
        "macro_f1": float(f1_score(test_y, pred, average="macro")),
        "train_samples": int(len(train_x)),
        "test_samples": int(len(test_x)),
    }


def probe_encoder(encoder: Any, ds: Dataset, split: EvalSplit, *, seed: int = 0) -> dict[str, Any]:
    """Embed the probe-train and probe-test samples of ``split`` with a frozen encoder and
    run the linear probe; an encoder that yields non-finite features gets an ``error``."""
    from common.eval.embed import embed

    ftr = embed(encoder, ds.x[split.probe_train])
    fte = embed(encoder, ds.x[split.probe_test])
    if not (np.isfinite(ftr).all() and np.isfinite(fte).all()):
        return {"error": "encoder produced non-finite features"}
    return dict(linear_probe(ftr, ds.y[split.probe_train], fte, ds.y[split.probe_test], seed=seed))
