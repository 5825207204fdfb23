"""The quiet-core watcher pins a real agent-like process's threads to the core and its
children off it (Linux affinity, read back from the kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulations.bench.quiet_core import AGENT_MODULE, QuietCore

CHILD = (
    "import subprocess, sys, threading, time\n"
    "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    "kid = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(kid.pid, flush=True)\n"
    "time.sleep(60)\n"
)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_agent_gets_the_core_and_its_worker_does_not(tmp_path: Path) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    core, others = cpus[0], set(cpus[1:])
    state = tmp_path / "user-07"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, AGENT_MODULE, "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    kid = int(proc.stdout.readline())
    try:
        watcher = QuietCore(state, core, others)
        deadline = time.monotonic() + 20
        while proc.pid not in watcher.pinned and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # one more pass of the watcher for the child
        watcher.stop()
        threads = [int(t.name) for t in Path(f"/proc/{proc.pid}/task").iterdir()]
        assert len(threads) >= 2
        assert all(os.sched_getaffinity(t) == {core} for t in threads)
        assert os.sched_getaffinity(kid) == others
    finally:
        proc.kill()
        proc.wait()
        os.kill(kid, 9)
