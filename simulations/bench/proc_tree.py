"""Peak resident memory of a process and all its descendants (Ray workers included),
sampled from /proc, for benchmark reports. Linux only; no extra dependency."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s direct children (none when it is gone)."""
    out: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for task in task_dir.iterdir():
            text = (task / "children").read_text()
            out.extend(int(c) for c in text.split())
    except OSError:
        pass
    return out


def tree_rss_bytes(root: int) -> int:
    """Sum of VmRSS over ``root`` and its descendants right now."""
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
        stack.extend(children(pid))
    return total


class PeakMemory:
    """Context manager sampling the tree's RSS every ``interval`` seconds."""

    def __init__(self, root: int | None = None, interval: float = 0.5) -> None:
        self.root = root or os.getpid()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.root))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_bytes(self.root))


def tree_pids(root: int) -> list[int]:
    """``root`` and its live descendants right now (``root`` first)."""
    out, stack, seen = [], [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen or not Path(f"/proc/{pid}").exists():
            continue
        seen.add(pid)
        out.append(pid)
        stack.extend(children(pid))
    return out


def rss_bytes(pid: int) -> int:
    """VmRSS of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    """Number of open file descriptors of one process (0 if it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def proc_name(pid: int) -> str:
    """A short name: Ray's process title (``ray::ClientAppActor``) or the program's name."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    first = argv[0].decode(errors="replace").split(" ")[0] if argv and argv[0] else "?"
    name = first if first.startswith("ray::") else os.path.basename(first)
    if name.startswith("python") and len(argv) > 2 and argv[1] == b"-m":
        name = f"python -m {argv[2].decode(errors='replace')}"
    return name
