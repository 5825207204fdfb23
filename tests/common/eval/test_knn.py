"""The kNN classifier finds the right neighbours, weighs their votes as Wu et al. do,
and gives the same answer however the test set is batched."""

from __future__ import annotations

import numpy as np
import pytest

from common.eval.knn import knn_classify, knn_probe


def _clusters(n_per: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(4, 16) * 10.0
    y = np.repeat(np.arange(4), n_per)
    return centres[y] + rng.normal(scale=0.5, size=(len(y), 16)), y


def test_well_separated_clusters_are_classified_exactly() -> None:
    xtr, ytr = _clusters(50, 0)
    xte, yte = _clusters(25, 1)
    for temperature in (0.07, None):
        res = knn_probe(xtr, ytr, xte, yte, k=20, temperature=temperature)
        assert res["accuracy"] == 1.0 and res["macro_f1"] == 1.0, temperature
    assert res["train_samples"] == 200 and res["test_samples"] == 100


def test_hand_checked_neighbours() -> None:
    # Train points on the unit circle at angles 0, 10, 20 (label 7) and 90, 100 (label 3).
    deg = np.deg2rad([0.0, 10.0, 20.0, 90.0, 100.0])
    train = np.stack([np.cos(deg), np.sin(deg)], axis=1) * [
        [1],
        [2],
        [3],
        [1],
        [5],
    ]  # norms ignored
    labels = np.array([7, 7, 7, 3, 3])
    test = np.array([[1.0, 0.0], [0.0, 1.0], [np.cos(np.deg2rad(50)), np.sin(np.deg2rad(50))]])
    # k=1: nearest by angle is train 0 (0 deg), train 3 (90 deg), train 2 (20 deg, 30 deg away).
    assert knn_classify(train, labels, test, k=1).tolist() == [7, 3, 7]
    # k=5 majority: three 7s against two 3s for every test point.
    assert knn_classify(train, labels, test, k=5, temperature=None).tolist() == [7, 7, 7]
    # k=5 weighted: at 90 deg, sims are cos 90/80/70 = 0, .17, .34 (label 7) and 1, .98 (label 3);
    # with T=0.07 the two label-3 votes are ~e^9 times heavier.
    assert knn_classify(train, labels, test, k=5, temperature=0.07).tolist() == [7, 3, 7]
    # Euclidean metric uses lengths: (0, 1) is nearest to train 3 at (0, 1), then train 0 at (1, 0).
    assert knn_classify(train, labels, test[1:2], k=1, metric="euclidean").tolist() == [3]


def test_weighted_vote_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(3)
    xtr, ytr = rng.normal(size=(60, 5)), rng.integers(0, 3, 60)
    xte = rng.normal(size=(40, 5))
    n = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    sim = n(xte) @ n(xtr).T
    expected = []
    for row in sim:
        nn_idx = np.argsort(-row)[:7]
        votes = np.bincount(ytr[nn_idx], weights=np.exp(row[nn_idx] / 0.1), minlength=3)
        expected.append(int(votes.argmax()))
    assert knn_classify(xtr, ytr, xte, k=7, temperature=0.1).tolist() == expected


def test_batched_equals_unbatched() -> None:
    rng = np.random.default_rng(1)
    xtr, ytr = rng.normal(size=(300, 8)), rng.integers(0, 5, 300)
    xte = rng.normal(size=(101, 8))
    whole = knn_classify(xtr, ytr, xte, k=10, batch_size=1000)
    for bs in (1, 7, 64):
        assert np.array_equal(knn_classify(xtr, ytr, xte, k=10, batch_size=bs), whole)
    assert len(np.unique(whole)) > 1


def test_k_larger_than_train_set_and_bad_arguments() -> None:
    xtr, ytr = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]]), np.array([0, 1, 1])
    assert knn_classify(xtr, ytr, np.array([[1.0, 0.05]]), k=50, temperature=None).tolist() == [1]
    with pytest.raises(ValueError, match="metric"):
        knn_classify(xtr, ytr, xtr, metric="manhattan")
    with pytest.raises(ValueError, match="temperature"):
        knn_classify(xtr, ytr, xtr, temperature=0.0)
    with pytest.raises(ValueError, match="k must"):
        knn_classify(xtr, ytr, xtr, k=0)
    with pytest.raises(ValueError, match="dims"):
        knn_classify(xtr, ytr, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        knn_classify(xtr[:0], ytr[:0], xtr)
