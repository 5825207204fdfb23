"""The replay buffer keeps the newest windows with their feedback, and copies them in."""

from __future__ import annotations

import numpy as np
import pytest

from client.runtime.replay import ReplayBuffer, ReplayError, stack_windows


def test_keeps_the_last_capacity_entries_oldest_first() -> None:
    buf = ReplayBuffer(3)
    for step in range(5):
        buf.add(step, np.full((2, 4), step), action=step % 2, reward=float(step))
    assert len(buf) == 3
    assert [i.step for i in buf.snapshot()] == [2, 3, 4]
    assert [i.step for i in buf.since(2)] == [3, 4]
    assert buf.since(4) == []
    windows = stack_windows(buf.snapshot())
    assert windows.shape == (3, 2, 4) and windows.dtype == np.float32
    assert windows[:, 0, 0].tolist() == [2.0, 3.0, 4.0]


def test_windows_are_copied_and_snapshots_do_not_move() -> None:
    buf = ReplayBuffer(4)
    w = np.zeros((2, 4), np.float32)
    buf.add(0, w, 1, 1.0)
    snap = buf.snapshot()
    w[:] = 7  # the caller reuses its array
    buf.add(1, w, 0, 0.0)
    assert snap[0].window.max() == 0 and len(snap) == 1


def test_bad_capacity_and_shapes_are_refused() -> None:
    with pytest.raises(ReplayError, match=">= 2"):
        ReplayBuffer(1)
    buf = ReplayBuffer(4)
    buf.add(0, np.zeros((2, 4)), 0, 0.0)
    with pytest.raises(ReplayError, match="does not match"):
        buf.add(1, np.zeros((3, 4)), 0, 0.0)
    with pytest.raises(ReplayError, match="no logged windows"):
        stack_windows([])
