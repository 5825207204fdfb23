"""What an outsider (holding only ``ca.crt``) or a registered device tries against a
running ``fedssl server``, on loopback, for real."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bare_superlink import flwr, flwr_home
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Flower's own CLI, as an outsider would use it (default connection: the public port).
CLI_ATTACKS: dict[str, Callable[[str, str, str, str], list[str]]] = {
    "list runs": lambda run, node, app, key: ["ls", "--format", "json"],
    "list devices": lambda run, node, app, key: ["supernode", "list", "--format", "json"],
    "read the run's log": lambda run, node, app, key: ["log", run, "--show"],
    "stop the run": lambda run, node, app, key: ["stop", run],
    "submit a foreign app": lambda run, node, app, key: ["run", app, "--format", "json"],
    "register a Sybil device": lambda run, node, app, key: ["supernode", "register", key],
    "unregister a real device": lambda run, node, app, key: ["supernode", "unregister", node],
}
# Raw requests to routes the SuperLink serves on the same port.
REFUSED_ROUTES = (
    "/v1/control/list-runs",
    "/v1/control/start-run",
    "/v1/control/stop-run",
    "/v1/control/stream-logs",
    "/v1/control/register-supernode",
    "/v1/control/unregister-supernode",
    "/v1/control/list-supernodes",
    "/v1/runtime/acquire-task",
    "/v1/runtime/pull-task-input",
    "/v1/fleet/register-node",
    "/v1/fleet/unregister-node",
    "/docs",
    "/openapi.json",
)


def outsider_cli(
    root: Path, port: int, ca: Path, run: str, node: str, app: Path, key: Path
) -> dict[str, tuple[int, str]]:
    home = flwr_home(root, f"127.0.0.1:{port}", ca)
    return {
        name: flwr(home, *argv(run, node, str(app), str(key))) for name, argv in CLI_ATTACKS.items()
    }


def node_auth_headers(private_key: Path) -> dict[str, str]:
    """The signed identity headers a registered SuperNode sends (Flower 1.42's scheme)."""
    from flwr.supercore.date import now
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes, sign_message

    key = serialization.load_ssh_private_key(private_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    stamp = now().isoformat()
    return {
        "flwr-public-key": base64.b64encode(public_key_to_bytes(key.public_key())).decode(),
        "flwr-timestamp": stamp,
        "flwr-signature": base64.b64encode(sign_message(key, stamp.encode())).decode(),
    }


def https_status(
    port: int,
    ca: Path,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        return conn.getresponse().status
    finally:
        conn.close()


def huge_body(port: int, ca: Path, size: int = 300 * 1024 * 1024) -> int:
    """Announce a 300 MB body and start sending it; the answer's status (or 0 if the
    connection was cut before one came)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            head = f"POST /v1/fleet/push-object HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n\r\n"
            try:
                sock.sendall(head.encode())
                for _ in range(16):  # 16 MB of it, if nginx lets us
                    sock.sendall(b"\0" * (1024 * 1024))
            except OSError:
                pass
            try:
                answer = sock.recv(200).decode(errors="replace")
            except OSError:
                return 0
    return int(answer.split()[1]) if answer.startswith("HTTP/") else 0


def garbage(port: int, connections: int = 20) -> None:
    for _ in range(connections):
        with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
            try:
                sock.sendall(os.urandom(64 * 1024))
                sock.recv(1024)
            except OSError:
                pass


def slow_client(port: int, ca: Path, limit: float = 60.0) -> float:
    """A request header sent one byte every second; seconds until the server hangs up."""
    ctx = ssl.create_default_context(cafile=str(ca))
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"POST /v1/fleet/pull-messages HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            try:
                while time.monotonic() - start < limit:
                    sock.sendall(b"a")
                    time.sleep(1.0)
            except OSError:
                pass
    return time.monotonic() - start


def idle_connections(port: int, count: int = 400, hold: float = 15.0) -> int:
    """Open ``count`` connections that send nothing; how many the server closed itself."""
    socks = []
    for _ in range(count):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    time.sleep(hold)
    closed = 0
    for sock in socks:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        sock.close()
    return closed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """The largest RSS of ``pid`` seen while it lives, sampled every 0.1 s until
    ``stop``: the run may end (and its process exit) before an attack is over."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples, self.peak_mb = pid, 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            try:
                mb = rss_mb(self.pid)
            except OSError:  # exited: the samples so far stand
                return
            self.samples += 1
            self.peak_mb = max(self.peak_mb, mb)
            if self._stop.wait(0.1):
                return

    def stop(self) -> PeakRss:
        self._stop.set()
        self._thread.join()
        return self


FORKED_TASK = "forked ClientApp task"


def _parent_runs(proc: Path, fragment: str) -> bool:
    try:
        ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
        return fragment.encode() in Path(f"/proc/{ppid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False


class CmdlineWatch:
    """Samples every process's command line while a run goes on: a task token must never
    be an argument (other local users can read /proc/PID/cmdline)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.seen: set[str] = set()
        self.token_args: list[str] = []
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stop.wait(0.3):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    args = (proc / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                text = [a.decode(errors="replace") for a in args]
                self.seen.update(
                    t for t in text if "flwr-serverapp" in t or "clientapp_runner" in t
                )
                if "client.task_forker" in text and _parent_runs(proc, "client.task_forker"):
                    self.seen.add(FORKED_TASK)  # a device task forked by the warm parent
                if "--token" in text or any(t.startswith("--token=") for t in text):
                    self.token_args.append(" ".join(text))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def processes_mentioning(fragment: str) -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                text = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if fragment in text:
                out.append(f"{proc.name}: {text}")
    return out
