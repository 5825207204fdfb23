"""Processes as Linux's /proc shows them: whose child a process is, whether it still
runs, for the tests that check a killed or stopped process leaves nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``, whichever of its threads started them."""
    kids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == pid:
                kids.add(int(entry.name))
        except OSError:
            continue  # ended while we looked
    return kids


def alive(pid: int) -> bool:
    """Running (a zombie, ended but not yet reaped by its parent, is not)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def ended(pids: Iterable[int], within: float) -> bool:
    """Whether every process of ``pids`` has ended, waiting up to ``within`` seconds."""
    pids, deadline = list(pids), time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(alive(p) for p in pids)
