"""Put a real global encoder where a device's evaluation handler stores a delivery."""

from __future__ import annotations

from pathlib import Path

from client.delivery import store
from common.config import RunConfig
from common.local_round import initial_global_arrays
from server.round_report import save_global

DIGITS = RunConfig(dataset="digits")
DIGITS_SHAPE = (1, 8, 8)


def deliver(state: Path, tmp: Path, rnd: int) -> None:
    """The round-``rnd`` checkpoint of a digits run (seeded by the round), stored as a
    verified delivery in ``state``."""
    path = tmp / f"round-{rnd}.pt"
    cfg = DIGITS.replace(seed=rnd)
    save_global(cfg, DIGITS_SHAPE, path, initial_global_arrays(cfg, DIGITS_SHAPE), rnd)
    store(state, path.read_bytes(), rnd, "run")
