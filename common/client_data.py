"""Which samples each simulated client holds: the pretraining pool, partitioned.

Every process (server, each client) derives the same partition from the data set
name, the scheme and the seed, so nothing about the split has to be sent around.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from common.config import RunConfig
from common.data.dataset import Dataset
from common.data.errors import DataError
from common.data.partition import partition
from common.data.registry import load_dataset
from common.eval.protocol import EvalSplit, evaluation_split

DEFAULT_SYNTHETIC_CLIENTS = 10


@lru_cache(maxsize=4)
def load_with_split(spec: str, seed: int) -> tuple[Dataset, EvalSplit]:
    """The data set and its evaluation protocol (cached per process)."""
    ds = load_dataset(spec)
    return ds, evaluation_split(ds, seed)


def resolve_partition(scheme: str, n: int, ds: Dataset) -> tuple[str, int | None]:
    """``auto`` means natural when the data has client ids, otherwise IID; n=0 means default."""
    if scheme == "auto":
        scheme = "natural" if ds.client is not None else "iid"
    if scheme == "natural" and ds.client is None:
        raise DataError(
            f"{ds.name}: partition 'natural' needs per-sample client ids, and this data set has "
            "none; use --partition iid or dirichlet:ALPHA"
        )
    if scheme == "natural":
        return scheme, (n or None)
    return scheme, (n or DEFAULT_SYNTHETIC_CLIENTS)


def _client_index_lists(cfg: RunConfig) -> tuple[np.ndarray, ...]:
    return _partitioned(cfg.dataset, cfg.partition, cfg.num_clients, cfg.seed)


@lru_cache(maxsize=8)
def _partitioned(dataset: str, scheme: str, n: int, seed: int) -> tuple[np.ndarray, ...]:
    ds, split = load_with_split(dataset, seed)
    pool = ds.subset(split.pretrain)
    resolved, num_clients = resolve_partition(scheme, n, ds)
    parts = partition(pool, resolved, num_clients, seed)
    return tuple(split.pretrain[p] for p in parts)


def client_indices(cfg: RunConfig) -> list[np.ndarray]:
    """Indices (into the full data set) held by each client, in partition-id order."""
    return list(_client_index_lists(cfg))


def client_inputs(cfg: RunConfig, partition_id: int) -> np.ndarray:
    """The unlabeled inputs of one simulated client."""
    parts = _client_index_lists(cfg)
    if not 0 <= partition_id < len(parts):
        raise DataError(
            f"{cfg.dataset}: partition-id {partition_id} out of range; the run has {len(parts)} clients"
        )
    ds, _ = load_with_split(cfg.dataset, cfg.seed)
    return ds.x[parts[partition_id]]
