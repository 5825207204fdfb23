"""FastPollGrid keeps Flower's send_and_receive contract while polling more often."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from server.fast_grid import FastPollGrid, with_fast_polling


class _SlowGrid:
    """Replies to message i become available ``delays[i]`` seconds after the push."""

    def __init__(self, delays: list[float]) -> None:
        self.delays = delays
        self.pushed_at = 0.0
        self.pulls = 0

    def push_messages(self, messages: Iterable[Any]) -> list[str]:
        self.pushed_at = time.monotonic()
        return [f"m{i}" for i, _ in enumerate(messages)]

    def pull_messages(self, ids: Iterable[str]) -> list[Any]:
        self.pulls += 1
        now = time.monotonic() - self.pushed_at
        return [
            SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i))
            for i in sorted(ids)
            if now >= self.delays[int(i[1:])]
        ]

    def get_node_ids(self) -> list[int]:
        return [1, 2]


def test_returns_every_reply_soon_after_the_last_arrives() -> None:
    inner = _SlowGrid([0.0, 0.3, 0.6])
    grid = FastPollGrid(inner, poll_s=0.05)  # type: ignore[arg-type]
    t0 = time.monotonic()
    replies = list(grid.send_and_receive([object(), object(), object()], timeout=10))
    elapsed = time.monotonic() - t0
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["m0", "m1", "m2"]
    assert 0.6 <= elapsed < 1.5  # Flower's own Grid would return after 3 s at best


def test_timeout_returns_the_replies_received_so_far() -> None:
    inner = _SlowGrid([0.0, 99.0])
    grid = FastPollGrid(inner, poll_s=0.05)  # type: ignore[arg-type]
    t0 = time.monotonic()
    replies = list(grid.send_and_receive([object(), object()], timeout=0.4))
    assert [r.metadata.reply_to_message_id for r in replies] == ["m0"]
    assert time.monotonic() - t0 < 1.5


def test_polls_less_often_while_many_replies_are_pending() -> None:
    # 3,000 pending at 0.2 ms each: one pull every 0.6 s, not every 0.05 s.
    inner = _SlowGrid([0.0] * 2999 + [1.0])
    grid = FastPollGrid(inner, poll_s=0.05, per_pending_s=0.0002)  # type: ignore[arg-type]
    t0 = time.monotonic()
    replies = list(grid.send_and_receive([object()] * 3000, timeout=10))
    elapsed = time.monotonic() - t0
    assert len(replies) == 3000
    # First pull: 2,999 replies; then 1 pending: 0.05 s pulls until the last (at 1 s).
    assert 1.0 <= elapsed < 2.0 and 10 <= inner.pulls <= 25


def test_a_long_pause_never_overruns_the_timeout() -> None:
    inner = _SlowGrid([99.0] * 5000)  # 5,000 pending: a 1 s pause
    grid = FastPollGrid(inner, poll_s=0.05, per_pending_s=0.0002)  # type: ignore[arg-type]
    t0 = time.monotonic()
    assert list(grid.send_and_receive([object()] * 5000, timeout=0.3)) == []
    assert time.monotonic() - t0 < 0.8


def test_other_calls_are_delegated_and_in_memory_grids_keep_their_pace() -> None:
    inner = _SlowGrid([0.0])
    assert list(FastPollGrid(inner).get_node_ids()) == [1, 2]  # type: ignore[arg-type]

    class InMemoryGrid:  # the simulation's Grid, by name
        pass

    g = with_fast_polling(InMemoryGrid())  # type: ignore[arg-type]
    assert isinstance(g, FastPollGrid) and g._poll_s == 0.1
