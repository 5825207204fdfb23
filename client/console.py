"""What a device's operator sees: one line per round instead of Flower's chatter.

``fedssl client`` keeps everything its SuperNode, SuperExec and tasks print in
``STATE_DIR/supernode.log`` (with timestamps). On the console it shows fedssl's own
lines, warnings, errors and tracebacks, but not Flower's per-message INFO lines
(Receiving/Sending with message ids, Uvicorn, "Successfully installed"); ``--verbose``
shows those too. After each round ``RoundReporter`` turns the rows the device's tasks
wrote (``client.mods.timing``) into one line: the loss, where the round's seconds went
and the bytes in and out; after each delivered encoder, one line with its evaluation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.processes import plain_text

# Flower's and Uvicorn's routine lines: "INFO :      Receiving: ...", "INFO:     Started
# server process", the app install note. Warnings and errors are not routine, except:
FLOWER_ROUTINE = re.compile(r"^(INFO|DEBUG)\s*:|^Successfully installed ")
FLOWER_QUIET = (
    "EXPERIMENTAL: SuperExec authentication",  # at every start, about Flower itself
    # Flower's generic exit block of a failed connection (exit code 305): fedssl's exit
    # line names the cause (client.reachability.diagnose). The cause's own line, other
    # than a refused activation, is still shown.
    "Exit Code: 305",
    "Failed to initialize the connection to the SuperLink.",
    "[code: 2004] Failed to activate SuperNode.",
    "The SuperNode could not establish a connection to the SuperLink.",
    "For more information, visit: <https://flower.ai/docs/",
)
STAGE_NAMES = {
    "setup": "setup",
    "share_keys": "keys",
    "collect_masked_vectors": "train+mask",
    "unmask": "unmask",
    "train": "train",
}
ROUND_END_STAGES = ("unmask", "train")  # the device's last message of a training round


def shows(line: str) -> bool:
    """Whether a child's output line belongs on the console (it always goes to the log)."""
    text = plain_text(line)
    return (
        bool(text) and not FLOWER_ROUTINE.match(text) and not any(q in text for q in FLOWER_QUIET)
    )


def megabytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def training_line(rows: list[dict[str, Any]]) -> str:
    """One round of training, from its messages' timing rows (in arrival order)."""
    rnd = rows[-1].get("round", "?")
    figures: dict[str, Any] = {}
    for row in rows:
        figures.update(row.get("figures") or {})
    failed = [STAGE_NAMES.get(r["stage"], r["stage"]) for r in rows if r.get("failed")]
    if failed:
        head = f"round {rnd}: failed in {', '.join(failed)} (see supernode.log)"
    elif "train-loss" in figures:
        head = (
            f"round {rnd}: loss {figures.get('first-loss', float('nan')):.4f} -> "
            f"{figures['train-loss']:.4f} ({figures.get('steps', '?')} steps)"
        )
    else:
        head = f"round {rnd}: done"
    start = min(r["time"] - r["handler_s"] - (r.get("startup_s") or 0.0) for r in rows)
    span = max(r["time"] for r in rows) - start
    stages = " + ".join(
        f"{STAGE_NAMES.get(r['stage'], r['stage'])} {r['handler_s'] + (r.get('startup_s') or 0.0):.1f}"
        for r in rows
    )
    received = sum(r.get("bytes_in", 0) for r in rows)
    sent = sum(r.get("bytes_out", 0) for r in rows)
    return (
        f"{head} | {span:.1f} s here ({stages} s in tasks) | received "
        f"{megabytes(received)}, sent {megabytes(sent)}"
    )


def evaluation_line(row: dict[str, Any]) -> str:
    """One delivered global encoder: stored, and what it scores on this device."""
    f = row.get("figures") or {}
    rnd = row.get("round", "?")
    if row.get("failed"):
        return f"round {rnd}: evaluation failed (see supernode.log)"
    parts = [f"round {rnd}: global encoder received ({megabytes(row.get('bytes_in', 0))})"]
    if "skipped" in f:
        parts.append(f"not evaluated: {f['skipped']}")
    else:
        scores = []
        if "accuracy" in f:
            scores.append(f"personal head {100 * f['accuracy']:.1f}%")
        if "knn-accuracy" in f:
            scores.append(f"kNN {100 * f['knn-accuracy']:.1f}%")
        if "pretext-loss" in f:
            scores.append(f"pretext loss {f['pretext-loss']:.4f}")
        parts.append("here: " + ", ".join(scores) if scores else "evaluated")
    took = row["handler_s"] + (row.get("startup_s") or 0.0)
    return f"{'; '.join(parts)} | {took:.1f} s"


class RoundReporter:
    """Follows ``STATE_DIR/timing.jsonl`` from its current end and calls ``emit`` with one
    line per finished training round and per evaluated global encoder."""

    def __init__(self, path: Path, emit: Callable[[str], None]) -> None:
        self.path, self.emit = path, emit
        self.offset = path.stat().st_size if path.exists() else 0
        self.pending: dict[tuple[Any, Any], list[dict[str, Any]]] = {}

    def poll(self) -> None:
        """Report what the tasks have written since the last call (complete lines only)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for raw in complete.splitlines():
            try:
                row = json.loads(raw)
            except ValueError:
                continue  # a line torn by a killed task: the next rows still count
            self._take(row)

    def _take(self, row: dict[str, Any]) -> None:
        stage = row.get("stage")
        if stage == "evaluate":
            self.emit(evaluation_line(row))
            return
        if stage not in STAGE_NAMES:
            return  # queries: the server asking a role, or announcing the run's end
        key = (row.get("run"), row.get("round"))
        rows = self.pending.setdefault(key, [])
        rows.append(row)
        if stage in ROUND_END_STAGES or row.get("failed"):
            self.emit(training_line(self.pending.pop(key)))
