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


def held_out_clients(cfg: RunConfig) -> list[int]:
    """The client ids the evaluation protocol keeps out of pretraining (HAPT: users 22-30);
    [] for data without client ids."""
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    if ds.client is None:
        return []
    training = set(np.unique(ds.client[split.pretrain]).tolist())
    return sorted(int(c) for c in np.unique(ds.client) if int(c) not in training)


def eval_client_count(cfg: RunConfig) -> int:
    """How many evaluation-only clients a simulation runs (none without federated
    evaluation; ``eval-clients`` -1: one per held-out client)."""
    if not cfg.evaluate_every:
        return 0
    held_out = held_out_clients(cfg)
    if cfg.eval_clients < 0:
        return len(held_out)
    if cfg.eval_clients > len(held_out):
        raise DataError(
            f"{cfg.dataset}: eval-clients {cfg.eval_clients} exceeds its {len(held_out)} "
            "held-out clients"
        )
    return cfg.eval_clients


def client_data(cfg: RunConfig, partition_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one simulated client: a training partition for ids 0..n-1, then the
    held-out clients in id order (evaluation-only). y = -1 where unlabeled."""
    parts = _client_index_lists(cfg)
    ds, _ = load_with_split(cfg.dataset, cfg.seed)
    if 0 <= partition_id < len(parts):
        idx = parts[partition_id]
        return ds.x[idx], ds.y[idx]
    k = partition_id - len(parts)
    held_out = held_out_clients(cfg)
    if ds.client is None or not 0 <= k < len(held_out):
        raise DataError(
            f"{cfg.dataset}: partition-id {partition_id} out of range; the run has {len(parts)} "
            f"training clients and {len(held_out)} held-out ones"
        )
    idx = np.flatnonzero(ds.client == held_out[k])
    return ds.x[idx], ds.y[idx]


def client_inputs(cfg: RunConfig, partition_id: int) -> np.ndarray:
    """The unlabeled inputs of one simulated client."""
    parts = _client_index_lists(cfg)
    if not 0 <= partition_id < len(parts):
        raise DataError(
            f"{cfg.dataset}: partition-id {partition_id} out of range; the run has {len(parts)} clients"
        )
    ds, _ = load_with_split(cfg.dataset, cfg.seed)
    return ds.x[parts[partition_id]]
