"""A bounded replay buffer of the device's recent windows and the feedback logged for them.

Continual adaptation trains the encoder on what the device saw lately, and rebuilds the
bandit from what it learned lately, so the buffer keeps both: each window with the
action the loop chose for it and the reward it observed. Bounded (the oldest entry
falls out), so memory stays fixed on a device that runs for months: 512 HAPT windows
of 6 x 128 float32 are 1.5 MiB.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from common.errors import BadInputError


class ReplayError(BadInputError):
    """A capacity or an entry the buffer cannot hold."""


@dataclass(frozen=True)
class Logged:
    """One past decision: the window, what was played and what it paid."""

    step: int
    window: np.ndarray
    action: int
    reward: float


class ReplayBuffer:
    """The last ``capacity`` logged decisions, oldest first; windows are copied in."""

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ReplayError(f"replay capacity must be >= 2 windows, got {capacity}")
        self.capacity = int(capacity)
        self._items: deque[Logged] = deque(maxlen=self.capacity)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, step: int, window: np.ndarray, action: int, reward: float) -> None:
        # A copy: the caller may reuse its array for the next window.
        arr = np.array(window, dtype=np.float32, copy=True)
        if self._items and arr.shape != self._items[-1].window.shape:
            raise ReplayError(
                f"window of shape {arr.shape} does not match the buffered "
                f"{self._items[-1].window.shape}"
            )
        self._items.append(Logged(int(step), arr, int(action), float(reward)))

    def snapshot(self) -> list[Logged]:
        """The entries now held, oldest first (a new list: later adds do not change it)."""
        return list(self._items)

    def since(self, step: int) -> list[Logged]:
        """Entries logged after ``step``, oldest first."""
        return [item for item in self._items if item.step > step]


def stack_windows(items: list[Logged]) -> np.ndarray:
    """The windows of ``items`` as one (N, ...) float32 batch."""
    if not items:
        raise ReplayError("no logged windows to stack")
    return np.stack([item.window for item in items])
