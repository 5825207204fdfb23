"""One attempt of a device: its SuperNode and SuperExec, from start to exit.

``fedssl client`` (``client.edge``) calls ``supervise`` once per connection attempt.
Both processes write to ``STATE_DIR/supernode.log``; the console gets fedssl's own
lines, warnings and errors (``client.console``), one line per round, and, instead of
Flower's retry lines, one line naming the server's address and why it cannot be
reached (``client.reachability``). The attempt ends when the SuperNode exits, when the
server announces that the run has ended (after the SuperNode has acknowledged it), or
when ``stop`` is set; both processes are stopped with it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from client.activation import ACTIVATED, record_activation
from client.console import RoundReporter, shows
from client.mods.timing import TIMING_FILE
from client.reachability import RetryReporter
from common.messages import RUN_END_FILE
from common.processes import Child, plain_text

RUN_END_ACK_S = 10.0
RUN_END_LINGER_S = 2.0
LOG_FILE = "supernode.log"
log = logging.getLogger("fedssl.client")


@dataclass(frozen=True)
class Attempt:
    """What one attempt runs, and for whom."""

    supernode: list[str]  # argv
    superexec: list[str]  # argv
    env: dict[str, str]
    state: Path
    name: str  # the device's name in logs
    identity: str  # its key's fingerprint (client.state_lock.device_id)
    server: str  # HOST:PORT
    ca: Path | None
    verbose: bool = False


def supervise(a: Attempt, stop: threading.Event) -> tuple[int | None, list[str]]:
    """Run the attempt; the SuperNode's exit code and its last lines."""
    tail: list[str] = []
    retries = RetryReporter(a.server, a.ca)
    rounds = RoundReporter(a.state / TIMING_FILE, lambda line: log.info("%s", line))

    def on_node_line(line: str) -> None:
        tail.append(line)
        del tail[:-200]
        if ACTIVATED in line:
            record_activation(a.state, a.server, a.identity)
        if not retries.takes(line) and (a.verbose or shows(line)):
            _relay(a.name, line)

    def on_exec_line(line: str) -> None:
        # The SuperExec retries the local SuperNode while it starts or after it exits:
        # that is not the server being away, and only the log needs it.
        if "Connection attempt failed" in line or "Giving up" in line:
            return
        if a.verbose or shows(line):
            _relay(a.name, line)

    log_file = a.state / LOG_FILE
    node = Child(
        "supernode", a.supernode, env=a.env, log_file=log_file, on_line=on_node_line, cwd=a.state
    )
    log.info("device %s: SuperNode pid %d connecting to %s", a.name, node.pid, a.server)
    execs = _SuperExec(a, log_file, on_exec_line)
    try:
        _watch(a, node, execs, rounds, tail, stop)
    finally:
        execs.stop()
        rc = node.stop()
        rounds.poll()
    return rc, tail


class _SuperExec:
    """The device's SuperExec, restarted when it dies."""

    def __init__(self, a: Attempt, log_file: Path, on_line: Callable[[str], None]) -> None:
        self.a, self.log_file, self.on_line = a, log_file, on_line
        self.child = self._start()

    def _start(self) -> Child:
        a = self.a
        return Child(
            "superexec",
            a.superexec,
            env=a.env,
            log_file=self.log_file,
            on_line=self.on_line,
            cwd=a.state,
        )

    def keep_alive(self) -> None:
        if self.child.poll() is not None:
            log.warning("the SuperExec exited with code %s; restarting it", self.child.poll())
            self.child = self._start()

    def stop(self) -> None:
        self.child.stop()


def _watch(
    a: Attempt,
    node: Child,
    execs: _SuperExec,
    rounds: RoundReporter,
    tail: list[str],
    stop: threading.Event,
) -> None:
    """Until the SuperNode exits, ``stop`` is set, or the run has ended and the
    SuperNode has acknowledged the news (so the server collects it before the node goes
    offline): keep the SuperExec alive, report finished rounds."""
    ended_at: float | None = None
    while node.poll() is None and not stop.is_set():
        if ended_at is None and _run_ended(a.state):
            ended_at = time.monotonic()
        if ended_at is not None and (
            _acknowledged(tail) or time.monotonic() - ended_at > RUN_END_ACK_S
        ):
            stop.wait(RUN_END_LINGER_S)
            return
        execs.keep_alive()
        rounds.poll()
        stop.wait(1.0)


def _acknowledged(tail: list[str]) -> bool:
    """The SuperNode has sent its reply to the last query it received."""
    received = [i for i, t in enumerate(tail) if "Receiving: query message" in t]
    return bool(received) and any("Sent successfully" in t for t in tail[received[-1] :])


def _run_ended(state: Path) -> bool:
    """True once the server has said that the run ended (the ClientApp's note)."""
    path = state / RUN_END_FILE
    if not path.is_file():
        return False
    try:
        note = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    log.info(
        "the server ended run %s: %s, %s rounds completed, %s failed; this device is done",
        note.get("run-id", "?"),
        note.get("status", "?"),
        note.get("rounds-completed", "?"),
        note.get("rounds-failed", "?"),
    )
    return True


def _relay(name: str, line: str) -> None:
    text = plain_text(line)
    if text:
        print(f"[{name}] {text}", file=sys.stderr, flush=True)
