"""Which nodes train and which only evaluate, and which of them train in a round.

Each node is asked once (a query message with the run's training config, from which a
simulated client works out its role; it also names its partition) and its answer is
kept; nodes that have not answered yet count as trainers, so a run without
evaluation-only nodes trains everyone as before.

When only a fraction of the nodes trains each round, the draw comes from the run's seed
and the round, over the nodes in a fixed order (partition, then node id), so that a run
repeated with the same seed trains the same clients in every round. Flower's own
sampler draws from Python's unseeded global ``random``, and simulated node ids are
random in every run. Under central DP noise the draw stays unseeded: the privacy the
accountant credits to sampling holds only while nobody can tell who was sampled.
A real device's answer about its partition is not believed (``trust_partitions``):
devices know the seed, and a device that named its own place in the order could steer
its chance of being drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from common.config_values import Scalar
from common.messages import EVALUATE, PARTITION_KEY, ROLE_RECORD, TRAIN

log = logging.getLogger("fedssl.server")
ASK_TIMEOUT_S = 120.0


class NodeRoles:
    def __init__(self, training_config: dict[str, Scalar], trust_partitions: bool = True) -> None:
        self.training_config = dict(training_config)
        self.trust_partitions = trust_partitions  # simulation only: its clients are ours
        self.roles: dict[int, str] = {}
        self.partitions: dict[int, int] = {}  # node id -> partition, where the node said

    def ask(self, grid: Grid, node_ids: Iterable[int], timeout: float = ASK_TIMEOUT_S) -> None:
        """Ask the nodes whose role is not known yet."""
        unknown = [n for n in node_ids if n not in self.roles]
        if not unknown:
            return
        content = RecordDict({ROLE_RECORD: ConfigRecord(dict(self.training_config))})
        messages = [Message(content, dst_node_id=n, message_type="query") for n in unknown]
        for reply in grid.send_and_receive(messages, timeout=timeout):
            if reply.has_error():
                continue
            record = reply.content.config_records.get(ROLE_RECORD)
            role = str(record["role"]) if record is not None else TRAIN
            node = reply.metadata.src_node_id
            self.roles[node] = EVALUATE if role == EVALUATE else TRAIN
            if record is not None and self.trust_partitions:
                self.partitions[node] = int(record.get(PARTITION_KEY, -1))  # type: ignore[arg-type]
        evaluating = sum(1 for n in unknown if self.roles.get(n) == EVALUATE)
        if evaluating:
            log.info("%d of %d new nodes only evaluate", evaluating, len(unknown))
        silent = sum(1 for n in unknown if n not in self.roles)
        if silent:
            log.warning(
                "%d of %d nodes did not answer the role question within %.0f s; they count "
                "as trainers, drawn (with fraction-train < 1) in node-id order, which a "
                "rerun does not repeat",
                silent,
                len(unknown),
                timeout,
            )

    def trains(self, node_id: int) -> bool:
        return self.roles.get(node_id, TRAIN) == TRAIN

    def count(self, node_ids: Iterable[int], role: str) -> int:
        return sum(1 for n in node_ids if self.roles.get(n) == role)


def sample_nodes(
    node_ids: Sequence[int],
    k: int,
    seed: int | None,
    server_round: int,
    partitions: Mapping[int, int],
) -> list[int]:
    """``k`` of ``node_ids``, drawn uniformly without replacement from ``(seed,
    server_round)`` over the nodes ordered by partition (-1 where unknown), then node
    id; from fresh OS entropy when ``seed`` is None."""
    ranked = sorted(node_ids, key=lambda n: (partitions.get(n, -1), n))
    rng = np.random.default_rng(None if seed is None else [seed, server_round])
    chosen = rng.choice(len(ranked), k, replace=False)
    return [ranked[i] for i in sorted(chosen)]
