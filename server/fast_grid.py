"""A Grid whose ``send_and_receive`` polls for replies at a pace that fits the cohort.

Flower 1.42's deployment Grid (``HttpGrid``) sleeps 3 s between pulls while it waits
for replies. A SecAgg+ round waits for replies four times, so on a fast network the
server alone adds about 6 s per round on average (half an interval per stage), which
is ours to cut: each pull is one cheap local request to the SuperLink.

The simulation's ``InMemoryGrid`` pulls every 0.1 s, and each pull checks every
pending message under the link state's lock: at 10,000 clients a pull costs about as
long as the interval, so the server thread held the GIL and the lock the engine needs
to hand out messages. Here the interval grows with what is pending (0.2 ms each, at
least the base interval), which keeps polling to a few percent of a core at any
cohort and adds at most one interval once the last reply is in. Everything else is
delegated unchanged to the wrapped Grid.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flwr.app import Message
from flwr.serverapp import Grid
from flwr.supercore.run import Run

POLL_S = 0.25  # deployment; the in-memory Grid keeps Flower's 0.1 s
IN_MEMORY_POLL_S = 0.1
PER_PENDING_S = 0.0002


class FastPollGrid(Grid):
    def __init__(
        self, inner: Grid, poll_s: float = POLL_S, per_pending_s: float = PER_PENDING_S
    ) -> None:
        self._inner = inner
        self._poll_s = poll_s
        self._per_pending_s = per_pending_s

    def set_run(self, run: Run) -> None:
        self._inner.set_run(run)

    @property
    def run(self) -> Run:
        return self._inner.run

    def create_message(self, *args: Any, **kwargs: Any) -> Message:
        return self._inner.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self._inner.get_node_ids()

    def get_nodes(self) -> Iterable[Any]:
        return self._inner.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._inner.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._inner.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Same contract as Flower's: push, then pull until every reply or the timeout."""
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending:
            got = list(self.pull_messages(pending))
            replies.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            pause = max(self._poll_s, self._per_pending_s * len(pending))
            if deadline is not None:
                pause = min(pause, max(deadline - time.monotonic(), 0.0))
            time.sleep(pause)
        return replies

    def __getattr__(self, name: str) -> Any:  # anything else the inner Grid offers
        return getattr(self._inner, name)


def with_fast_polling(grid: Grid) -> Grid:
    """Wrap a Grid: the deployment's polls faster, the simulation's slower when busy."""
    if type(grid).__name__ == "InMemoryGrid":
        return FastPollGrid(grid, poll_s=IN_MEMORY_POLL_S)
    return FastPollGrid(grid)
