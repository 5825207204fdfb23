"""The warm task parent forks one child per task token and takes its children with it
when it is stopped or its SuperExec goes away (real processes)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from procfs import children, ended

from common.environment import daemon_env


@pytest.fixture()
def silent_runtime() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: each task's ClientApp
    process stays alive, waiting for its message."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"127.0.0.1:{s.getsockname()[1]}"


def _start(address: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "client.task_forker", "--runtime-api-address", address]
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=daemon_env(),
    )  # fmt: skip


def _forked(forker: subprocess.Popen[bytes], tokens: int) -> set[int]:
    assert forker.stdin is not None
    for i in range(tokens):
        forker.stdin.write(f"token-{i}\n".encode())
    forker.stdin.flush()
    deadline = time.monotonic() + 90  # the parent imports torch and Flower first
    while len(kids := children(forker.pid)) < tokens:
        assert forker.poll() is None, "the forker exited"
        assert time.monotonic() < deadline, f"only {len(kids)} of {tokens} tasks forked"
        time.sleep(0.1)
    return kids


def test_one_child_per_token_and_sigterm_stops_them_all(silent_runtime: str) -> None:
    forker = _start(silent_runtime)
    try:
        kids = _forked(forker, 2)
        assert len(kids) == 2
        forker.send_signal(signal.SIGTERM)
        assert forker.wait(30) == 0
        assert ended(kids, within=10)
    finally:
        if forker.poll() is None:
            forker.kill()


def test_the_forker_ends_with_its_superexec(silent_runtime: str) -> None:
    forker = _start(silent_runtime)
    try:
        (kid,) = _forked(forker, 1)
        assert forker.stdin is not None
        forker.stdin.close()  # what the SuperExec's exit does to the pipe
        assert forker.wait(30) == 0
        assert ended([kid], within=10)
    finally:
        if forker.poll() is None:
            forker.kill()
