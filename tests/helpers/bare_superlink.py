"""A plain Flower SuperLink (TLS and node authentication, but no fedssl proxy in front):
the control plane exposed, as an attacker would find it if it were ever breached. Tests
use it to show that devices refuse foreign apps on their own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from common.processes import Child

ENV = {
    **os.environ,
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FEDSSL_TORCH_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def flwr_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def flwr_home(root: Path, address: str, ca: Path) -> Path:
    """A FLWR_HOME whose default connection is ``address`` over TLS, trusting ``ca``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.toml").write_text(
        f'[superlink]\ndefault = "target"\n\n[superlink.target]\naddress = "{address}"\n'
        f'root-certificates = "{ca}"\n'
    )
    return root


def flwr(home: Path, *args: str, timeout: float = 60) -> tuple[int, str]:
    res = subprocess.run(
        [flwr_bin("flwr"), *args],
        env={**ENV, "FLWR_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return res.returncode, res.stdout + res.stderr


class BareSuperLink:
    def __init__(self, root: Path, certs: Path) -> None:
        self.root = root
        self.port = free_port()
        self.home = flwr_home(root / "flwr-home", f"127.0.0.1:{self.port}", certs / "ca.crt")
        argv = [flwr_bin("flower-superlink"), "--host", "127.0.0.1", "--port", str(self.port)]
        argv += ["--ssl-ca-certfile", str(certs / "ca.crt")]
        argv += ["--ssl-certfile", str(certs / "server.crt")]
        argv += ["--ssl-keyfile", str(certs / "server.key"), "--enable-supernode-auth"]
        argv += ["--disable-runtime-dependency-installation"]
        env = {**ENV, "FLWR_HOME": str(self.home)}
        self.child = Child(
            "bare-superlink", argv, env=env, log_file=root / "superlink.log", cwd=root
        )

    def flwr(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        return flwr(self.home, *args, timeout=timeout)

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc, out = self.flwr("ls", "--format", "json", timeout=30)
            if rc == 0 and '"success": true' in out:
                return
            time.sleep(1)
        raise AssertionError(f"bare SuperLink not up:\n{(self.root / 'superlink.log').read_text()}")

    def stop(self) -> None:
        self.child.stop()
