"""Few-label evaluation: the linear probe fitted on a small labeled fraction.

On a device, labels are scarce: what matters is how good the features are when only
1-10 % of the windows carry a label. The subset is stratified (every class keeps its
share and at least ``min_per_class`` samples) and seeded, so runs are repeatable and
several seeds give a spread.
"""

from __future__ import annotations

import math

import numpy as np

from common.eval.linear_probe import linear_probe


def few_label_indices(
    y: np.ndarray, fraction: float, seed: int, min_per_class: int = 1
) -> np.ndarray:
    """Sorted positions into ``y`` of a stratified, seeded sample of its labeled entries.

    Each class (``y >= 0``; -1 = unlabeled is never chosen) with ``n`` samples gives
    ``max(min_per_class, round(fraction * n))`` of them, capped at ``n``; ``round`` is
    Python's. The same ``seed`` gives the same indices.
    """
    y = np.asarray(y)
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(f"few-label: y must be a 1-D integer array, got {y.shape} {y.dtype}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)):
        raise ValueError(f"few-label: fraction must be a number, got {fraction!r}")
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise ValueError(f"few-label: fraction must be in (0, 1], got {fraction!r}")
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, int) or min_per_class < 0:
        raise ValueError(f"few-label: min_per_class must be an int >= 0, got {min_per_class!r}")
    labeled = np.flatnonzero(y >= 0)
    if labeled.size == 0:
        raise ValueError("few-label: no labeled samples (all y are -1)")
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for cls in np.unique(y[labeled]):
        members = labeled[y[labeled] == cls]
        take = min(len(members), max(min_per_class, int(round(fraction * len(members)))))
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def few_label_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    fraction: float,
    seed: int,
    min_per_class: int = 1,
) -> dict[str, float]:
    """Linear probe fitted on ``few_label_indices(train_y, fraction, seed)``, scored on all
    of the test set: accuracy, macro_f1 and labels_used."""
    idx = few_label_indices(train_y, fraction, seed, min_per_class)
    res = linear_probe(train_x[idx], train_y[idx], test_x, test_y, seed=seed)
    res["labels_used"] = int(len(idx))
    return res
