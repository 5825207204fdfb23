"""What ``simulations.bench.load`` samples from /proc, and how samples map to rounds:
one sample per interval, tied to the round count read from the run's metrics.jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulations.bench.proc_tree import open_fds, proc_name, rss_bytes, tree_pids

MB = 2**20


@dataclass
class Sample:
    t: float  # seconds since the child started
    rounds_done: int  # rows in metrics.jsonl when the sample was taken
    server_rss: int
    tree_rss: int
    server_fds: int
    tree_fds: int
    procs: int
    by_proc: dict[int, int] = field(default_factory=dict)  # PID -> RSS
    names: dict[int, str] = field(default_factory=dict)  # PID -> name


def take_sample(pid: int, t: float, rounds_done: int) -> Sample:
    """One reading of the tree (names are read each time: Ray workers rename themselves)."""
    pids = tree_pids(pid)
    rss = {p: rss_bytes(p) for p in pids}
    return Sample(
        t=t,
        rounds_done=rounds_done,
        server_rss=rss.get(pid, 0),
        tree_rss=sum(rss.values()),
        server_fds=open_fds(pid),
        tree_fds=sum(open_fds(p) for p in pids),
        procs=len(pids),
        by_proc=rss,
        names={p: proc_name(p) for p in pids},
    )


@dataclass
class RoundFigures:
    round: int
    completed: bool
    clients_aggregated: int
    clients_sampled: int
    seconds: float  # the server's own round time (metrics.jsonl)
    server_rss_mb: float  # at the end of the round (first sample after its row)
    tree_rss_mb: float
    tree_peak_mb: float  # highest tree RSS seen while the round ran
    server_fds: int
    tree_fds: int
    procs: int
    by_proc_mb: dict[str, float] = field(default_factory=dict)  # "PID name" -> RSS


def per_round(rows: list[dict[str, Any]], samples: list[Sample]) -> list[RoundFigures]:
    """Tie samples to rounds: samples taken with r-1 rows written ran during round r;
    the first one taken with r rows written is round r's end."""
    out = []
    for i, row in enumerate(rows, start=1):
        end = next((s for s in samples if s.rounds_done >= i), None)
        if end is None:  # the child ended before the next sample: use the last one
            if not samples:
                break
            end = samples[-1]
        during = [s.tree_rss for s in samples if s.rounds_done == i - 1] + [end.tree_rss]
        out.append(
            RoundFigures(
                round=int(row["round"]),
                completed=bool(row["completed"]),
                clients_aggregated=int(row["clients_aggregated"]),
                clients_sampled=int(row["clients_sampled"]),
                seconds=float(row.get("seconds") or 0.0),
                server_rss_mb=end.server_rss / MB,
                tree_rss_mb=end.tree_rss / MB,
                tree_peak_mb=max(during) / MB,
                server_fds=end.server_fds,
                tree_fds=end.tree_fds,
                procs=end.procs,
                by_proc_mb={f"{p} {end.names.get(p, '?')}": v / MB for p, v in end.by_proc.items()},
            )
        )
    return out


class RowWatcher:
    """Reads the rows of metrics.jsonl as the server appends them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self._pos = 0
        self._buf = ""

    def poll(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as fh:
                fh.seek(self._pos)
                chunk = fh.read()
                self._pos = fh.tell()
        except OSError:
            return []
        self._buf += chunk
        *lines, self._buf = self._buf.split("\n")
        new = [json.loads(x) for x in lines if x.strip()]
        self.rows.extend(new)
        return new
