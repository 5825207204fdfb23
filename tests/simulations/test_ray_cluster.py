"""``fedssl simulate --ray-address``: a SecAgg+ simulation on a real two-node Ray cluster
started here (``ray start``: a head and a second node, each with one CPU and a resource
of its own), whose simulated clients must run on both nodes (slow); and an address
where no cluster listens is refused at once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_run import QUIET_FLOWER
from sklearn.datasets import load_digits

RAY = str(Path(sys.executable).parent / "ray")


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _raylets(temp_dir: str) -> dict[int, str]:
    """raylet pid -> the node's own resource name, for this cluster's raylets."""
    out = {}
    for pid in _pids():
        cmd = _cmdline(pid)
        if "raylet" in cmd.split(" ")[0] and temp_dir in cmd:
            out[pid] = "fedssl_head" if "fedssl_head" in cmd else "fedssl_second"
    return out


def _node_of(pid: int, raylets: dict[int, str]) -> str | None:
    for _ in range(10):
        if pid in raylets:
            return raylets[pid]
        pid = _ppid(pid)
        if pid <= 1:
            return None
    return None


@pytest.fixture
def cluster() -> Iterator[tuple[str, str]]:
    """A head and a second Ray node on this machine; every process ended by its pid."""
    temp_dir = tempfile.mkdtemp(prefix="/tmp/rt")  # Ray's socket paths must stay short
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    env = {**os.environ, **QUIET_FLOWER, "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    procs = [
        subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                f"--port={port}",
                f"--temp-dir={temp_dir}",
                "--include-dashboard=false",
                '--resources={"fedssl_head": 1}',
                *common,
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    ]
    try:
        _wait(lambda: len(_raylets(temp_dir)) == 1, 120, "the Ray head")
        procs.append(
            subprocess.Popen(
                [RAY, "start", f"--address={address}", '--resources={"fedssl_second": 1}', *common],
                env=env,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        )
        _wait(lambda: len(_raylets(temp_dir)) == 2, 120, "the second Ray node")
        yield address, temp_dir
    finally:
        ours = [p for p in _pids() if temp_dir in _cmdline(p)]
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(60)
        time.sleep(2)
        for pid in ours:  # anything of this cluster still alive (ours: its own temp dir)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not start within {timeout} s")
        time.sleep(0.5)


@pytest.mark.slow
def test_a_secagg_simulation_runs_its_clients_on_both_nodes(
    cluster: tuple[str, str], tmp_path: Path
) -> None:
    address, temp_dir = cluster
    raylets = _raylets(temp_dir)
    d = load_digits()
    data = tmp_path / "users.npz"
    np.savez(data, x=(d.images / 16.0).astype(np.float32)[:, None], y=d.target,
             client=np.arange(len(d.target)) % 4)  # fmt: skip
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "common.cli", "simulate", "--ray-address", address,
           "--dataset", f"npz:{data}", "--rounds", "2", "--local-epochs", "1",
           "--set", "eval-clients=0", "--no-evaluate", "--out", str(out)]  # fmt: skip
    nodes_seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:  # which raylet each simulated client's actor runs under
        while not done.is_set():
            for pid in _pids():
                if _cmdline(pid).startswith("ray::ClientAppActor"):
                    node = _node_of(pid, raylets)
                    if node:
                        nodes_seen.add(node)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, **QUIET_FLOWER})  # fmt: skip
    done.set()
    watcher.join()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"the Ray cluster at {address} (2 nodes, 2 CPUs)" in proc.stderr + proc.stdout
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["completed"] for r in rows] == [True, True]
    # SecAgg+ over every training client (one of the four users is held out for the probe)
    assert all(r["clients_aggregated"] == r["clients_sampled"] == 3 for r in rows)
    assert nodes_seen == {"fedssl_head", "fedssl_second"}


def test_an_address_without_a_cluster_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "common.cli", "simulate", "--ray-address", f"127.0.0.1:{port}",
         "--dataset", "digits", "--rounds", "1", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300, env={**os.environ, **QUIET_FLOWER},
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"--ray-address 127.0.0.1:{port}: cannot join a Ray cluster there" in proc.stderr
