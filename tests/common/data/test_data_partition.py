"""Partitioners: coverage, disjointness, determinism, balance, natural ids, Dirichlet skew."""

from __future__ import annotations

import numpy as np
import pytest

from common.data import DataError, Dataset, load_digits, natural_client_ids, partition


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits()


def _toy(n: int = 60, clients: np.ndarray | None = None, classes: int = 3) -> Dataset:
    y = np.arange(n) % (classes + 1) - 1  # includes unlabeled (-1)
    return Dataset(
        x=np.zeros((n, 1, 4), np.float32),
        y=y.astype(np.int64),
        client=clients,
        num_classes=classes,
        name="toy",
    )


def _check_partition(parts: list[np.ndarray], n: int) -> None:
    for p in parts:
        assert p.dtype == np.int64 and p.size > 0
        assert (np.diff(p) > 0).all()  # sorted, no duplicates
    allidx = np.concatenate(parts)
    assert allidx.size == n and np.array_equal(np.sort(allidx), np.arange(n))  # disjoint, covers


@pytest.mark.parametrize("scheme", ["iid", "dirichlet:0.5", "dirichlet:100"])
def test_cover_disjoint_deterministic(digits: Dataset, scheme: str) -> None:
    parts = partition(digits, scheme, 7, seed=1)
    assert len(parts) == 7
    _check_partition(parts, len(digits))
    again = partition(digits, scheme, 7, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = partition(digits, scheme, 7, seed=2)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_iid_balanced(digits: Dataset) -> None:
    sizes = [p.size for p in partition(digits, "iid", 10, seed=0)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 1797


def test_natural_follows_client_ids() -> None:
    ids = np.array([7, 3, 3, 9, 7, 7, 3, 9, 9, 9] * 3)
    ds = _toy(30, clients=ids)
    assert natural_client_ids(ds) == [3, 7, 9]
    parts = partition(ds, "natural", None, seed=0)
    _check_partition(parts, 30)
    for cid, p in zip([3, 7, 9], parts, strict=True):
        assert np.array_equal(p, np.flatnonzero(ids == cid))
    first_two = partition(ds, "natural", 2, seed=5)
    assert [int(ids[p[0]]) for p in first_two] == [3, 7]
    assert sum(p.size for p in first_two) == int(np.isin(ids, [3, 7]).sum())
    with pytest.raises(DataError, match="only 3 natural client ids"):
        partition(ds, "natural", 4, seed=0)


def test_natural_needs_client_ids(digits: Dataset) -> None:
    with pytest.raises(DataError, match="natural.*needs per-sample client ids"):
        partition(digits, "natural", None, seed=0)


def _mean_label_entropy(ds: Dataset, parts: list[np.ndarray]) -> float:
    ents = []
    for p in parts:
        q = np.bincount(ds.y[p], minlength=ds.num_classes) / p.size
        q = q[q > 0]
        ents.append(float(-(q * np.log(q)).sum()))
    return float(np.mean(ents))


def test_dirichlet_small_alpha_is_skewed(digits: Dataset) -> None:
    skewed = _mean_label_entropy(digits, partition(digits, "dirichlet:0.1", 10, seed=0))
    mild = _mean_label_entropy(digits, partition(digits, "dirichlet:100", 10, seed=0))
    uniform = np.log(10)
    assert mild > 0.97 * uniform  # near-IID label mix
    assert skewed < 0.6 * uniform  # few classes per client
    assert skewed < mild


def test_dirichlet_treats_unlabeled_as_a_class() -> None:
    ds = _toy(400)
    parts = partition(ds, "dirichlet:1.0", 4, seed=3)
    _check_partition(parts, 400)
    assert sum(int((ds.y[p] == -1).sum()) for p in parts) == 100


def test_dirichlet_redraws_a_client_too_small_to_train() -> None:
    """A contrastive batch needs two samples: a draw leaving a client one is re-drawn."""
    from common.data.partition import _dirichlet_once

    y = (np.arange(120) % 4).astype(np.int64)
    ds = Dataset(x=np.zeros((120, 1, 4), np.float32), y=y, client=None, num_classes=4, name="toy")
    rng = np.random.default_rng(11)
    first = _dirichlet_once(y, 12, 0.3, rng)
    assert min(p.size for p in first) == 1  # seed 11's first draw: a client of one sample
    parts = partition(ds, "dirichlet:0.3", 12, seed=11)
    _check_partition(parts, 120)
    assert min(p.size for p in parts) >= 2
    second = _dirichlet_once(y, 12, 0.3, rng)  # the same seeded stream's next draw
    assert all(np.array_equal(a, b) for a, b in zip(parts, second, strict=True))


def test_empty_clients_raise() -> None:
    ds = _toy(20, classes=1)
    with pytest.raises(DataError, match=r"clients .* fewer than 2 samples .*fewer clients or a"):
        partition(ds, "dirichlet:0.01", 15, seed=0)
    with pytest.raises(DataError, match="21 clients for only 20 samples"):
        partition(ds, "iid", 21, seed=0)


@pytest.mark.parametrize(
    ("scheme", "num_clients", "problem"),
    [
        ("shards", 3, r"unknown partition scheme 'shards'; valid: natural, iid, dirichlet:ALPHA"),
        ("dirichlet", 3, r"give ALPHA"),
        ("dirichlet:abc", 3, r"'abc' is not a number"),
        ("dirichlet:0", 3, r"ALPHA must be a finite number > 0"),
        ("dirichlet:-1", 3, r"ALPHA must be a finite number > 0"),
        ("dirichlet:nan", 3, r"ALPHA must be a finite number > 0"),
        ("iid", None, r"needs num_clients"),
        ("iid", 0, r"num_clients must be a positive int"),
    ],
)
def test_bad_specs(digits: Dataset, scheme: str, num_clients: int | None, problem: str) -> None:
    with pytest.raises(DataError, match=problem):
        partition(digits, scheme, num_clients, seed=0)
