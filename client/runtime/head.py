"""Few-label personalization head: standardized embeddings + multinomial logistic regression.

A device has a handful of labels of its own user (say 10 per activity). The head is
the same model as the ``linear`` / ``few-label`` evaluation protocols
(``common.eval.linear_probe``), so its accuracy on a device matches the figures of
``fedssl evaluate``: per-dimension standardization (fitted on the labeled embeddings)
then L2-regularized multinomial logistic regression, fitted by L-BFGS (scikit-learn,
one thread). 60 labels x 256 dims fit in tens of milliseconds. Prediction is plain
numpy (one matrix product and a softmax), a few microseconds per window.
"""

from __future__ import annotations

import warnings

import numpy as np

from common.errors import BadInputError


class HeadError(BadInputError):
    """Labels or embeddings the head cannot fit or score (shape, NaN, too few classes)."""


def _check_z(z: np.ndarray, dim: int | None = None) -> np.ndarray:
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise HeadError(f"expected embeddings (N, D) or one (D,), got shape {np.shape(z)}")
    if dim is not None and arr.shape[1] != dim:
        raise HeadError(f"expected embeddings of width {dim}, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        raise HeadError("embeddings hold NaN or Inf values")
    return arr


class PersonalHead:
    """``fit(z, y)`` on a few labeled embeddings, then ``predict`` (or ``decision_function`` for the logits).

    ``c`` is the inverse L2 strength (scikit-learn's C); labels may be any integers
    and come back as given (``classes_``).
    """

    def __init__(self, c: float = 1.0, max_iter: int = 500) -> None:
        if not c > 0:
            raise HeadError(f"c must be positive, got {c}")
        self.c = float(c)
        self.max_iter = int(max_iter)
        self.classes_: np.ndarray | None = None
        self._mean = self._scale = self._coef = self._bias = np.empty(0)

    def fit(self, z: np.ndarray, y: np.ndarray) -> PersonalHead:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        x = _check_z(z)
        labels = np.asarray(y)
        if labels.shape != (len(x),):
            raise HeadError(f"expected {len(x)} labels (N,), got shape {labels.shape}")
        if labels.dtype.kind not in "iu":
            raise HeadError(f"labels must be integers, got dtype {labels.dtype}")
        classes = np.unique(labels)
        if len(classes) < 2:
            raise HeadError(f"need labels of at least two classes, got {classes.tolist()}")
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale < 1e-12] = 1.0  # a constant feature carries nothing; do not divide by 0
        clf = LogisticRegression(C=self.c, max_iter=self.max_iter)
        # BLAS threads spin-wait on a busy device; the problem is tiny (see linear_probe).
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit((x - mean) / scale, labels)
        coef, bias = clf.coef_, clf.intercept_
        if len(classes) == 2:  # scikit-learn stores one row for two classes: make it two
            coef, bias = np.vstack([-coef / 2, coef / 2]), np.array([-bias[0] / 2, bias[0] / 2])
        # Fold the standardization into the weights: predict is then one product.
        self._coef = (coef / scale).T.copy()  # (D, K)
        self._bias = bias - mean @ self._coef
        self.classes_ = classes
        return self

    @property
    def dim(self) -> int:
        return int(self._coef.shape[0])

    def decision_function(self, z: np.ndarray) -> np.ndarray:
        """Logits (N, K) for embeddings (N, D) or (D,)."""
        if self.classes_ is None:
            raise HeadError("the head is not fitted; call fit(z, y) first")
        result: np.ndarray = _check_z(z, self.dim) @ self._coef + self._bias
        return result

    def predict(self, z: np.ndarray) -> np.ndarray:
        """Predicted labels (N,) from ``classes_``."""
        logits = self.decision_function(z)
        assert self.classes_ is not None  # decision_function refuses an unfitted head
        result: np.ndarray = self.classes_[logits.argmax(axis=1)]
        return result
