"""Which nodes train and which only evaluate. Each node is asked once (a query message
with the run's training config, from which a simulated client works out its role) and
its answer is kept; nodes that have not answered yet count as trainers, so a run
without evaluation-only nodes trains everyone as before."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from common.config_values import Scalar
from common.messages import EVALUATE, ROLE_RECORD, TRAIN

log = logging.getLogger("fedssl.server")
ASK_TIMEOUT_S = 120.0


class NodeRoles:
    def __init__(self, training_config: dict[str, Scalar]) -> None:
        self.training_config = dict(training_config)
        self.roles: dict[int, str] = {}

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
            self.roles[reply.metadata.src_node_id] = EVALUATE if role == EVALUATE else TRAIN
        evaluating = sum(1 for n in unknown if self.roles.get(n) == EVALUATE)
        if evaluating:
            log.info("%d of %d new nodes only evaluate", evaluating, len(unknown))

    def trains(self, node_id: int) -> bool:
        return self.roles.get(node_id, TRAIN) == TRAIN

    def count(self, node_ids: Iterable[int], role: str) -> int:
        return sum(1 for n in node_ids if self.roles.get(n) == role)
