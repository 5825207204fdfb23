"""Few-label subsets are stratified, seeded and drawn only from labeled samples."""

from __future__ import annotations

import numpy as np
import pytest

from common.eval.few_label import few_label_indices, few_label_probe


@pytest.fixture
def labels() -> np.ndarray:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [500, 230, 45, 3])
    y = np.concatenate([y, np.full(120, -1)])  # unlabeled samples are never chosen
    return rng.permutation(y)


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.1, 0.5, 1.0])
def test_stratified_counts(labels: np.ndarray, fraction: float) -> None:
    idx = few_label_indices(labels, fraction, seed=0)
    counts = np.bincount(labels[idx], minlength=4)
    for cls, n in enumerate(np.bincount(labels[labels >= 0])):
        assert counts[cls] == min(n, max(1, round(fraction * n))), (cls, n)
    assert (labels[idx] >= 0).all()
    assert len(np.unique(idx)) == len(idx) and np.array_equal(idx, np.sort(idx))
    assert idx.min() >= 0 and idx.max() < len(labels)


def test_min_per_class(labels: np.ndarray) -> None:
    counts = np.bincount(labels[few_label_indices(labels, 0.01, 0, min_per_class=10)])
    assert counts.tolist() == [10, 10, 10, 3]  # 1 % of 500 is 5 < 10; class 3 has only 3


def test_seeded(labels: np.ndarray) -> None:
    a = few_label_indices(labels, 0.1, seed=1)
    assert np.array_equal(a, few_label_indices(labels, 0.1, seed=1))
    b = few_label_indices(labels, 0.1, seed=2)
    assert len(a) == len(b) and not np.array_equal(a, b)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01, float("nan")])
def test_bad_fraction(labels: np.ndarray, fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        few_label_indices(labels, fraction, seed=0)


def test_no_labels_is_refused() -> None:
    with pytest.raises(ValueError, match="no labeled"):
        few_label_indices(np.full(10, -1), 0.5, seed=0)


def test_probe_uses_only_the_subset() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 3))
    x = rng.normal(size=(900, 8))
    y = (x @ w).argmax(axis=1)
    res = few_label_probe(x[:600], y[:600], x[600:], y[600:], fraction=0.05, seed=0)
    expected = sum(max(1, round(0.05 * n)) for n in np.bincount(y[:600]))
    assert res["labels_used"] == expected < 40
    assert res["test_samples"] == 300 and res["train_samples"] == expected
    assert 0.6 < res["accuracy"] <= 1.0
