"""A Grid that writes down every message the server receives, for privacy drills.

The Grid is the server's only way to hear from clients, so recording it shows all
that the server ever held about any one client. With ``FEDSSL_RECORD_DIR`` set, each
reply's content is written as its wire bytes under ``DIR/server/``; a test checks
that no individual unmasked update is among them. Unset in normal use.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from flwr.app import Message
from flwr.common.serde import recorddict_to_proto
from flwr.serverapp import Grid

from server.fast_grid import FastPollGrid

ENV = "FEDSSL_RECORD_DIR"


class RecordingGrid(FastPollGrid):
    """Delegates everything; writes each received message's content to ``out``."""

    def __init__(self, inner: Grid, out: Path) -> None:
        super().__init__(inner)
        self._out = out
        out.mkdir(parents=True, exist_ok=True)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        got = list(self._inner.pull_messages(message_ids))
        for msg in got:
            src = msg.metadata.src_node_id
            name = f"round-{msg.metadata.group_id or '0'}-node-{src}-{uuid.uuid4().hex[:8]}"
            if msg.has_error():
                (self._out / f"{name}.error").write_text(str(msg.error))
            else:
                (self._out / f"{name}.pb").write_bytes(
                    recorddict_to_proto(msg.content).SerializeToString(deterministic=True)
                )
        return got


def with_recording(grid: Grid) -> Grid:
    root = os.environ.get(ENV, "")
    return RecordingGrid(grid, Path(root) / "server") if root else grid
