"""Tell every connected device that the run has ended, so that none waits for rounds
that will never come (``fedssl client`` then exits, saying how the run ended)."""

from __future__ import annotations

import logging
from typing import Any

from flwr.app import ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from common.messages import RUN_END_RECORD

log = logging.getLogger("fedssl.server")
ANNOUNCE_TIMEOUT_S = 60.0


def announce_run_end(grid: Grid, summary: dict[str, Any]) -> int:
    """Send the run's outcome to every node; return how many acknowledged it."""
    record = ConfigRecord(
        {
            "status": str(summary["status"]),
            "rounds-completed": int(summary["rounds_completed"]),
            "rounds-failed": int(summary["rounds_failed"]),
        }
    )
    nodes = list(grid.get_node_ids())
    messages = [
        Message(RecordDict({RUN_END_RECORD: record}), dst_node_id=node, message_type="query")
        for node in nodes
    ]
    replies = list(grid.send_and_receive(messages, timeout=ANNOUNCE_TIMEOUT_S))
    acked = sum(1 for r in replies if not r.has_error())
    log.info("told %d of %d devices that the run %s", acked, len(nodes), summary["status"])
    return acked
