"""One device per state folder, and per-device state files (real `fedssl client`
processes for the refusal)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from client.state_lock import StateDirInUseError, device_id, lock_state_dir
from common.environment import daemon_env
from server.deployment.certs import make_certs


def test_a_second_holder_is_refused_and_a_released_lock_is_free(tmp_path: Path) -> None:
    held = lock_state_dir(tmp_path)
    with pytest.raises(StateDirInUseError, match="in use by another fedssl client"):
        lock_state_dir(tmp_path)
    held.close()  # what the process's exit does
    lock_state_dir(tmp_path).close()


def test_device_ids_follow_the_key(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", nodes=["node-001", "node-002"])
    one, two = certs / "nodes" / "node-001", certs / "nodes" / "node-002"
    assert device_id(one, "x") == device_id(one, "y") != device_id(two, "x")
    assert device_id(None, "a") != device_id(None, "b")


def _client(tmp_path: Path, state: Path) -> subprocess.Popen[str]:
    data = tmp_path / "d.npz"
    if not data.exists():
        np.savez(data, x=np.zeros((8, 1, 8, 8), np.float32))
    argv = [sys.executable, "-m", "common.cli", "client", "--server", "127.0.0.1:9",
            "--data", str(data), "--insecure", "--state-dir", str(state)]  # fmt: skip
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=daemon_env()
    )


def test_a_second_client_on_one_state_dir_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = _client(tmp_path, state)
    try:
        deadline = time.monotonic() + 60
        while not (state / ".lock").exists() or not (state / ".lock").read_text().strip():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        second = _client(tmp_path, state)
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 2, out
        assert f"--state-dir {state.resolve()} is in use" in out
        assert first.poll() is None  # the first client is untouched
    finally:
        first.terminate()
        first.communicate(timeout=60)
