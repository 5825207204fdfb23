"""sklearn's 8x8 digits: a tiny labeled image set shipped with scikit-learn (tests, smoke runs)."""

from __future__ import annotations

import numpy as np

from common.data.dataset import Dataset
from common.data.validate import validate_dataset


def load_digits() -> Dataset:
    """(1797, 1, 8, 8) float32 in [0, 1] (pixel / 16), labels 0..9, no natural clients."""
    from sklearn.datasets import load_digits as _sk_load_digits  # lazy: sklearn import is slow

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None, :, :]
    ds = Dataset(
        x=np.ascontiguousarray(x),
        y=np.asarray(bunch.target, dtype=np.int64),
        client=None,
        num_classes=10,
        name="digits",
        class_names=[str(d) for d in range(10)],
    )
    return validate_dataset(ds, "digits")
