"""Real ``fedssl server`` and ``fedssl client`` processes on loopback, for the tests."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bare_superlink import ENV, free_port
from sklearn.datasets import load_digits

from server.deployment.certs import make_certs


def port_is_free(port: int) -> bool:
    """Nothing accepts connections on ``port``: no SuperLink is left listening. (A bind
    test would also fail when an unrelated process, such as another job's Ray worker,
    happens to hold the same ephemeral port number for its own socket.)"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


def write_device_data(root: Path, n: int, per_client: int = 150) -> list[Path]:
    """Digits split across ``n`` devices, one .npz each (what a device would hold)."""
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    paths = []
    for i in range(n):
        p = root / f"device-{i}.npz"
        np.savez(p, x=x[i::n][:per_client], y=d.target[i::n][:per_client])
        paths.append(p)
    return paths


class Loopback:
    """One server daemon and its devices under ``root``; every process stopped at close."""

    def __init__(self, root: Path, devices: int = 3, extra_keys: int = 0) -> None:
        self.root = root
        self.port = free_port()
        names = [f"node-{i:03d}" for i in range(1, devices + extra_keys + 1)]
        self.certs = make_certs(root / "certs", nodes=names)
        self.keys = [self.certs / "nodes" / n for n in names]
        self.data = write_device_data(root, devices + extra_keys)
        self.server: subprocess.Popen[bytes] | None = None
        self.clients: dict[str, subprocess.Popen[bytes]] = {}
        self.out = root / "out"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the child)
        return subprocess.Popen(
            [sys.executable, "-m", "common.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=ENV,
            cwd=self.root,
        )

    def start_server(self, rounds: int, register: int, extra: list[str] | None = None) -> None:
        keys = [f"{k}.pub" for k in self.keys[:register]]
        args = ["server", "--certs", str(self.certs), "--port", str(self.port)]
        args += ["--state-dir", str(self.root / "srv"), "--dataset", "digits", "--no-evaluate"]
        args += ["--rounds", str(rounds), "--out", str(self.out), "--set", "secagg-timeout=60"]
        for k in keys:
            args += ["--register", k]
        self.server = self._spawn("server", args + list(extra or []))

    def start_client(
        self, i: int, *extra: str, name: str | None = None, data: bool = True, state: str = ""
    ) -> subprocess.Popen[bytes]:
        """``data`` False: the device brings its data otherwise (``extra``: --stream);
        ``state``: its state folder's name (default: ``name``, which names its log)."""
        name = name or f"client{i}"
        args = ["client", "--server", f"127.0.0.1:{self.port}"]
        args += ["--data", str(self.data[i])] if data else []
        args += ["--state-dir", str(self.root / (state or name))]
        if "--insecure" not in extra:
            args += ["--key", str(self.keys[i]), "--ca", str(self.certs / "ca.crt")]
        self.clients[name] = self._spawn(name, args + list(extra))
        return self.clients[name]

    def wait_server(self, timeout: float) -> int:
        assert self.server is not None
        return self.server.wait(timeout)

    def wait_for(self, predicate, timeout: float, what: str, watch_server: bool = True) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if watch_server and self.server is not None and self.server.poll() is not None:
                raise AssertionError(
                    f"server exited ({self.server.returncode}) waiting for {what}:\n{self.log('server')}"
                )
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log('server')[-3000:]}")

    def _superlink_line(self) -> str:
        for line in self.log("server").splitlines():
            if "SuperLink pid" in line:
                return line.split("SuperLink pid")[1]
        raise AssertionError(f"no SuperLink pid in the server log:\n{self.log('server')}")

    def superlink_pid(self) -> int:
        return int(self._superlink_line().split()[0])

    def superlink_address(self) -> str:
        """The SuperLink's own loopback address (the proxy's upstream)."""
        return self._superlink_line().split(" on ")[1].split()[0]

    def rounds(self) -> list[dict[str, object]]:
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(90)

    def close(self) -> None:
        procs = list(self.clients.values()) + ([self.server] if self.server else [])
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
