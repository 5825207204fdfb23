"""Split one data set across federated clients: natural ids, IID, or label-skewed Dirichlet."""

from __future__ import annotations

import math

import numpy as np

from common.data.dataset import Dataset
from common.data.errors import DataError

SCHEMES = ("natural", "iid", "dirichlet:ALPHA")
DIRICHLET_MAX_DRAWS = 10  # re-draws (same seeded stream) before a too-small client is an error
# A contrastive batch needs two views of two samples: a client with fewer cannot train.
MIN_CLIENT_SAMPLES = 2


def natural_client_ids(ds: Dataset) -> list[int]:
    """Sorted distinct natural client ids (e.g. HAPT users); DataError if the set has none."""
    if ds.client is None:
        raise DataError(
            f"{ds.name}: partition 'natural' needs per-sample client ids, which this data set "
            "lacks; use 'iid' or 'dirichlet:ALPHA' (or add a `client` array to your .npz)"
        )
    return [int(c) for c in np.unique(ds.client)]


def _natural(ds: Dataset, num_clients: int | None) -> list[np.ndarray]:
    """One client per natural id; with num_clients=k, the first k ids in sorted order.

    Taking the first k (not a random k) keeps runs comparable across seeds and methods.
    """
    ids = natural_client_ids(ds)
    assert ds.client is not None
    if num_clients is not None:
        if num_clients > len(ids):
            raise DataError(
                f"{ds.name}: {num_clients} clients requested but the data set has only "
                f"{len(ids)} natural client ids; use at most {len(ids)}"
            )
        ids = ids[:num_clients]
    return [np.flatnonzero(ds.client == c).astype(np.int64) for c in ids]


def _iid(n: int, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A seeded permutation cut into parts whose sizes differ by at most one."""
    return [np.sort(p) for p in np.array_split(rng.permutation(n), num_clients)]


def _parse_alpha(scheme: str) -> float:
    text = scheme.split(":", 1)[1].strip()
    try:
        alpha = float(text)
    except ValueError:
        raise DataError(
            f"partition {scheme!r}: ALPHA {text!r} is not a number; use e.g. 'dirichlet:0.5'"
        ) from None
    if not math.isfinite(alpha) or alpha <= 0:
        raise DataError(
            f"partition {scheme!r}: ALPHA must be a finite number > 0, got {text!r}; "
            "smaller ALPHA gives more label skew, e.g. 'dirichlet:0.5'"
        )
    return alpha


def _dirichlet_once(
    y: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """Each class's samples (unlabeled -1 as one extra class) split by Dirichlet(alpha) shares."""
    parts: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        shares = rng.dirichlet(np.full(num_clients, alpha))
        if not np.all(np.isfinite(shares)):  # tiny alpha can underflow; fall back to one owner
            shares = np.eye(num_clients)[rng.integers(num_clients)]
        cuts = np.round(np.cumsum(shares)[:-1] * members.size).astype(np.int64)
        for k, chunk in enumerate(np.split(members, cuts)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def _check_count(ds: Dataset, num_clients: int | None, scheme: str) -> int:
    if num_clients is None:
        raise DataError(f"{ds.name}: partition {scheme!r} needs num_clients")
    if num_clients > len(ds):
        raise DataError(
            f"{ds.name}: {num_clients} clients for only {len(ds)} samples would leave clients "
            "empty; use fewer clients"
        )
    return num_clients


def partition(ds: Dataset, scheme: str, num_clients: int | None, seed: int) -> list[np.ndarray]:
    """One sorted int64 index array per client: disjoint, non-empty, covering the data set.

    natural: one client per distinct `ds.client` id in sorted order; num_clients=k keeps the
      first k ids (their samples only), None keeps all.
    iid: seeded random split into num_clients parts of nearly equal size.
    dirichlet:ALPHA: per class (unlabeled as one pseudo-class) client shares ~ Dirichlet(ALPHA);
      if a client ends up with fewer than MIN_CLIENT_SAMPLES samples the shares are re-drawn
      from the same seeded generator, up to DIRICHLET_MAX_DRAWS draws in all, before raising
      DataError. Results depend only on seed.
    """
    if not isinstance(scheme, str):
        raise DataError(f"partition scheme must be a string; valid: {', '.join(SCHEMES)}")
    if num_clients is not None and (
        isinstance(num_clients, bool)
        or not isinstance(num_clients, (int, np.integer))
        or num_clients < 1
    ):
        raise DataError(f"{ds.name}: num_clients must be a positive int, got {num_clients!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"partition seed must be a non-negative int, got {seed!r}")
    if len(ds) == 0:
        raise DataError(f"{ds.name}: cannot partition an empty data set")
    name = scheme.strip().lower()
    rng = np.random.default_rng(seed)
    if name == "natural":
        parts = _natural(ds, None if num_clients is None else int(num_clients))
    elif name == "iid":
        parts = _iid(len(ds), _check_count(ds, num_clients, scheme), rng)
    elif name.startswith("dirichlet:") or name == "dirichlet":
        if name == "dirichlet":
            raise DataError(f"partition {scheme!r}: give ALPHA, e.g. 'dirichlet:0.5'")
        alpha = _parse_alpha(name)
        k = _check_count(ds, num_clients, scheme)
        for _ in range(DIRICHLET_MAX_DRAWS):
            parts = _dirichlet_once(ds.y, k, alpha, rng)
            small = [i for i, p in enumerate(parts) if p.size < MIN_CLIENT_SAMPLES]
            if not small:
                break
        if small:
            raise DataError(
                f"{ds.name}: partition {scheme!r} left clients {small[:10]} with fewer than "
                f"{MIN_CLIENT_SAMPLES} samples ({len(small)} of {k}) after "
                f"{DIRICHLET_MAX_DRAWS} draws; use fewer clients or a larger ALPHA"
            )
    else:
        raise DataError(f"unknown partition scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    return parts
