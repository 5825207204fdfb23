"""Give one live agent a CPU core of its own, to measure decisions "on a quiet core".

A device that meets a 1 ms decision budget runs its agent on a core that its federated
training does not use. On a benchmark machine shared by a whole deployment that can be
shown for one device: every process of the run is kept off ``core`` (the affinity is
inherited from the benchmark's own), and a watcher moves the chosen agent's threads onto
``core`` and the agent's children (its niced preparation and adaptation worker) off it,
again after a restart. Linux only (``os.sched_setaffinity`` on thread ids).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from simulations.bench.proc_tree import children

AGENT_MODULE = "client.live.run"


def keep_off(core: int) -> set[int]:
    """Move this process (and so every child started from now on) off ``core``."""
    others = set(os.sched_getaffinity(0)) - {core}
    if not others:
        raise SystemExit("--quiet-core needs a machine with at least two CPUs")
    os.sched_setaffinity(0, others)
    return others


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _agent_pid(state_dir: Path) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = _cmdline(int(entry.name))
            if AGENT_MODULE in args and str(state_dir) in args:
                return int(entry.name)
    return None


def _pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (affinity is per thread on Linux)."""
    try:
        tids = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return
    for tid in tids:
        try:
            if os.sched_getaffinity(tid) != cpus:
                os.sched_setaffinity(tid, cpus)
        except OSError:  # the thread ended meanwhile
            pass


class QuietCore:
    """Watches until ``stop``: the agent of ``state_dir`` on ``core``, its children off."""

    def __init__(self, state_dir: Path, core: int, others: set[int]) -> None:
        self.state_dir, self.core, self.others = state_dir, core, others
        self.pinned: set[int] = set()  # agent pids seen (a restart adds one)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="quiet-core", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            pid = _agent_pid(self.state_dir)
            if pid is None:
                continue
            _pin(pid, {self.core})
            for child in children(pid):
                _pin(child, self.others)
            self.pinned.add(pid)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
