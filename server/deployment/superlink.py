"""The SuperLink and SuperExec children of ``fedssl server``, and the ``flwr`` CLI calls
the daemon makes against them.

The SuperLink listens on 127.0.0.1 only (an ephemeral port), with TLS from a loopback
certificate the daemon makes at every start; the network reaches it only through the
proxy (``server.deployment.proxy``), which passes the device API alone. ServerApps run in
``--isolation process`` under fedssl's own SuperExec (``server.deployment.superexec``), which
shares a secret with the SuperLink so that no other local process can take their tasks.
Flower's CLI finds the SuperLink through ``$FLWR_HOME/config.toml``; the daemon keeps
its own FLWR_HOME inside its state folder, so it never touches the user's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common.environment import daemon_env
from common.errors import FedsslError
from common.processes import Child, plain_text, run_quiet
from server.deployment.refusals import RefusalLog

CONNECTION = "fedssl"
# SuperLink lines that look alarming but are expected: re-registering a known device at
# every start, and its SuperExec retrying while the daemon shuts the SuperLink down.
EXPECTED_NOISE = (
    "Public key already in use",
    "Connection attempt failed",
    "SuperExec authentication is experimental",
)
log = logging.getLogger("fedssl.server")


class DeploymentError(FedsslError, RuntimeError):
    """The SuperLink could not be started or driven; the message says what to fix."""


def flwr_bin(name: str) -> str:
    """A Flower executable next to this Python (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise DeploymentError(f"{name} not found: is flwr installed in this environment?")
    return found


@dataclass(frozen=True)
class LinkSettings:
    state_dir: Path
    port: int  # on 127.0.0.1 only
    database: Path
    loopback_tls: Path | None  # ca.crt, server.crt/.key for 127.0.0.1; None: --insecure
    secret: Path  # the SuperExec auth secret

    @property
    def flwr_home(self) -> Path:
        return self.state_dir / "flwr-home"

    @property
    def local_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def allowed_app(self) -> Path:
        """The SHA-256 of the app bundle the daemon submitted: the only one its SuperExec runs."""
        return self.state_dir / "allowed-app.sha256"


def child_env(flwr_home: Path) -> dict[str, str]:
    return daemon_env(FLWR_HOME=str(flwr_home))


def write_connection(s: LinkSettings) -> None:
    s.flwr_home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]"]
    lines.append(f'address = "{s.local_address}"')
    if s.loopback_tls is None:
        lines.append("insecure = true")
    else:
        lines.append(f'root-certificates = "{s.loopback_tls / "ca.crt"}"')
    (s.flwr_home / "config.toml").write_text("\n".join(lines) + "\n")


def start_superlink(s: LinkSettings) -> Child:
    argv = [flwr_bin("flower-superlink"), "--host", "127.0.0.1", "--port", str(s.port)]
    argv += ["--database", str(s.database), "--disable-runtime-dependency-installation"]
    argv += ["--isolation", "process", "--superexec-auth-secret-file", str(s.secret)]
    if s.loopback_tls is None:
        argv.append("--insecure")
    else:
        tls = s.loopback_tls
        argv += [
            "--ssl-ca-certfile",
            str(tls / "ca.crt"),
            "--ssl-certfile",
            str(tls / "server.crt"),
        ]
        argv += ["--ssl-keyfile", str(tls / "server.key"), "--enable-supernode-auth"]
    write_connection(s)
    s.logs.mkdir(parents=True, exist_ok=True)
    child = Child(
        "superlink",
        argv,
        env=child_env(s.flwr_home),
        log_file=s.logs / "superlink.log",
        on_line=relay_warnings("superlink"),
        cwd=s.state_dir,
    )
    log.info(
        "SuperLink pid %d on %s (log: %s)", child.pid, s.local_address, s.logs / "superlink.log"
    )
    return child


def start_superexec(s: LinkSettings) -> Child:
    """fedssl's SuperExec for the ServerApp (its own process group: stopped as one)."""
    argv = [
        sys.executable,
        "-m",
        "server.deployment.superexec",
        "--runtime-api-address",
        s.local_address,
    ]
    argv += ["--auth-secret-file", str(s.secret), "--token-dir", str(s.state_dir / "tokens")]
    argv += ["--allowed-app", str(s.allowed_app), "--parent-pid", str(os.getpid())]
    if s.loopback_tls is not None:
        argv += ["--root-certificates", str(s.loopback_tls / "ca.crt")]
    return Child(
        "superexec",
        argv,
        env=child_env(s.flwr_home),
        log_file=s.logs / "superexec.log",
        on_line=relay_warnings("superexec"),
        cwd=s.state_dir,
    )


def relay_warnings(name: str) -> Callable[[str], None]:
    """A child's line hook that shows only what an operator needs: its errors and
    warnings (its full log is on disk)."""
    logger = logging.getLogger(f"fedssl.{name}")
    refusals = RefusalLog()

    def relay(line: str) -> None:
        text = plain_text(line)
        if any(noise in text for noise in EXPECTED_NOISE) or refusals.takes(text):
            return
        if text.startswith(("ERROR", "WARNING", "CRITICAL")) or "Traceback" in text:
            logger.warning("%s: %s", name, text)

    return relay


def flwr_cli(s: LinkSettings, *args: str, timeout: float = 120.0) -> tuple[int, str]:
    return run_quiet([flwr_bin("flwr"), *args], child_env(s.flwr_home), timeout=timeout)


def wait_until_up(s: LinkSettings, child: Child, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise DeploymentError(
                f"the SuperLink exited with code {child.poll()}; see {s.state_dir / 'logs' / 'superlink.log'}"
            )
        rc, out = flwr_cli(s, "ls", CONNECTION, "--format", "json", timeout=30)
        if rc == 0 and '"success": true' in out:
            return
        time.sleep(1.0)
    raise DeploymentError(f"the SuperLink did not answer on {s.local_address} in {timeout:.0f} s")


def register_node(s: LinkSettings, public_key: Path) -> str:
    """Register one device key; returns its node id, or "" when already registered."""
    rc, out = flwr_cli(s, "supernode", "register", str(public_key), CONNECTION, "--format", "json")
    payload = _json_tail(out)
    if payload.get("success"):
        return str(payload.get("node-id", payload.get("node_id", "")))
    err = str(payload.get("error-message", out))
    if "already in use" in err:
        return ""
    raise DeploymentError(f"registering {public_key} failed: {err.strip()}")


def list_nodes(s: LinkSettings) -> list[dict[str, object]]:
    rc, out = flwr_cli(s, "supernode", "list", CONNECTION, "--format", "json", timeout=30)
    nodes = _json_tail(out).get("nodes", [])
    return nodes if isinstance(nodes, list) else []


def stop_run(s: LinkSettings, run_id: str) -> None:
    rc, out = flwr_cli(s, "stop", run_id, CONNECTION, timeout=60)
    log.info("stopped the old Flower run %s (%s)", run_id, "ok" if rc == 0 else out.strip()[-200:])


def _json_tail(text: str) -> dict[str, object]:
    start = text.find("{")
    if start < 0:
        return {}
    try:
        payload = json.loads(text[start:])
    except json.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}
