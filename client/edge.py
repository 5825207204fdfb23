"""``fedssl client``: an edge device's process, a Flower SuperNode with fedssl's node config.

It checks what it can before connecting (the data file, the key's permissions, the CA
certificate), then runs ``flower-supernode`` with TLS and the device's identity key,
its data path and a node-local state folder (per-client SSL state survives restarts),
in ``--isolation process``, beside fedssl's SuperExec (``client.superexec``): every
ClientApp task then passes the app-signature check against the CA before any of the
app's code runs. When the server is away it keeps retrying; when the server says the
run has ended it exits; SIGTERM or Ctrl-C stops it and every process it started.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from client.state_lock import device_id, lock_state_dir
from common.errors import EXIT_ERROR, EXIT_OK, BadInputError
from common.messages import RUN_END_FILE
from common.private_files import private_tree, write_secret

# A restarted device is refused while the SuperLink still counts its previous session
# as online (measured: about 65 s after a SIGKILL); the refusal looks exactly like an
# unregistered key's, so both are retried this long before the device gives up.
DEFAULT_ACTIVATION_GRACE_S = 180.0
ACTIVATION_RETRY_S = 10.0
REFUSED = "Failed to activate SuperNode"
RUN_END_ACK_S = 10.0
RUN_END_LINGER_S = 2.0
DEFAULT_POLL_INTERVAL_S = 0.5
log = logging.getLogger("fedssl.client")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", required=True, help="the server's HOST:PORT")
    p.add_argument("--data", required=True, help="this device's data: an .npz file (x, optional y)")
    p.add_argument("--key", default="", help="this device's private key (from `fedssl certs`)")
    p.add_argument("--ca", default="", help="the CA certificate that signed the server's")
    p.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext, no identity, no app-signature check: lab use only",
    )
    p.add_argument(
        "--state-dir", default="fedssl-client", help="node-local state (default: %(default)s)"
    )
    p.add_argument("--name", default="", help="name in logs (default: the key's file name)")
    p.add_argument(
        "--port", type=int, default=0, help="local ClientApp API port (default: a free one)"
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=DEFAULT_POLL_INTERVAL_S,
        help="seconds between the device's requests for work while idle; shorter rounds "
        "against more requests to the server (Flower's own: 3; default: %(default)s)",
    )
    p.add_argument(
        "--cold-start",
        action="store_true",
        help="start each message's process from scratch (default: fork it from a warm "
        "parent that has imported torch once; it holds about 270 MB between messages)",
    )
    p.add_argument(
        "--max-wait-time",
        type=float,
        default=0,
        help="give up after this many seconds without the server (default: never)",
    )
    p.add_argument(
        "--activation-grace",
        type=float,
        default=DEFAULT_ACTIVATION_GRACE_S,
        help="keep retrying a refused activation for this many seconds: after a crash the "
        "server holds the device's old session for about a minute (default: %(default)s)",
    )
    p.add_argument(
        "--allow-plain-updates",
        action="store_true",
        help="also answer a server that asks for unmasked updates (off: SecAgg+ only)",
    )
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="this device evaluates each delivered global encoder on its data but never trains "
        "(a held-out device)",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_inputs(args: argparse.Namespace) -> tuple[Path, Path | None, Path | None]:
    from common.data.registry import load_dataset
    from common.keyfiles import check_private_key_file

    if not 0 < args.poll_interval <= 60:
        raise BadInputError(f"--poll-interval must be in (0, 60] seconds, got {args.poll_interval}")
    data = Path(args.data).expanduser().resolve()
    ds = load_dataset(f"npz:{data}")  # DataError names the problem in the file
    log.info("data %s: %d samples of shape %s", data, len(ds.x), tuple(ds.x.shape[1:]))
    if args.insecure:
        log.warning(
            "!!! --insecure: no TLS, no device identity and no check of the app's "
            "signature (this device runs whatever app the server sends); lab use only !!!"
        )
        return data, None, None
    if not args.key or not args.ca:
        raise BadInputError("--key and --ca are required (or --insecure for a lab server)")
    key = check_private_key_file(args.key).resolve()
    ca = Path(args.ca).expanduser().resolve()
    if not ca.is_file():
        raise BadInputError(f"--ca: {ca} does not exist")
    return data, key, ca


@dataclass(frozen=True)
class LocalRuntime:
    """The SuperNode's Runtime API on 127.0.0.1 and the secret its SuperExec holds."""

    port: int
    secret: Path


def supernode_argv(
    args: argparse.Namespace,
    data: Path,
    key: Path | None,
    ca: Path | None,
    state: Path,
    runtime: LocalRuntime,
) -> list[str]:
    identity = device_id(key, args.name or (key.name if key else "device"))
    node_config = f'data-path="{data}" state-dir="{state}" device-id="{identity}"'
    if args.allow_plain_updates:
        node_config += " allow-plain-updates=true"
    if args.evaluate_only:
        node_config += ' role="evaluate"'
    argv = [sys.executable, "-m", "client.supernode", "--poll-interval", str(args.poll_interval)]
    argv += ["--", "--superlink", args.server, "--node-config", node_config]
    argv += ["--port", str(runtime.port), "--isolation", "process"]
    argv += ["--superexec-auth-secret-file", str(runtime.secret)]
    if args.max_wait_time:
        argv += ["--max-wait-time", str(args.max_wait_time)]
    if key is None:
        argv.append("--insecure")
    else:
        argv += ["--root-certificates", str(ca), "--auth-supernode-private-key", str(key)]
    return argv


def superexec_argv(runtime: LocalRuntime, ca: Path | None, cold_start: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "client.superexec"]
    argv += ["--runtime-api-address", f"127.0.0.1:{runtime.port}"]
    argv += ["--auth-secret-file", str(runtime.secret), "--parent-pid", str(os.getpid())]
    argv += ["--cold"] if cold_start else []
    return argv + (["--ca", str(ca)] if ca is not None else [])


# What a SuperNode's exit output means, in the words a device operator needs.
DIAGNOSES = (
    (
        REFUSED,
        "the server refused this device: its public key is not registered there "
        "(on the server: `fedssl server --register KEY.pub ...`), or it still holds a "
        "session of this device from another process",
    ),
    (
        "Connection refused",
        "nothing accepts connections at the server's address: a wrong --server port, or "
        "the server is not running",
    ),
    (
        "Server disconnected without sending a response",
        "the server closed the connection: a plaintext client (--insecure) against a TLS "
        "server, or the wrong port",
    ),
    (
        "400 Bad Request' for url 'http://",
        "the server refused a plaintext request: a plaintext client (--insecure) against a "
        "TLS server",
    ),
    (
        "CERTIFICATE_VERIFY_FAILED",
        "the server's certificate does not verify against --ca (wrong CA, or the host name "
        "is not in the certificate: `fedssl certs --host NAME`)",
    ),
)


def diagnose(lines: list[str]) -> str:
    text = "\n".join(lines)
    for needle, meaning in DIAGNOSES:
        if needle in text:
            return meaning
    return ""


def _relay(name: str, line: str) -> None:
    from common.processes import plain_text

    text = plain_text(line)
    if text:
        print(f"[{name}] {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from common.environment import daemon_env
    from common.logs import setup_logging

    setup_logging()
    data, key, ca = _check_inputs(args)  # bad input rises to the CLI (exit 2)
    state = private_tree(Path(args.state_dir).expanduser().resolve())
    lock = lock_state_dir(state)  # noqa: F841 (held until the client exits)
    (state / "flwr-home").mkdir(parents=True, exist_ok=True)
    (state / RUN_END_FILE).unlink(missing_ok=True)
    runtime = LocalRuntime(
        port=args.port or _free_port(),
        secret=write_secret(state / "superexec.secret", secrets.token_hex(32)),
    )
    name = args.name or (key.name if key else "device")
    env = daemon_env(FLWR_HOME=str(state / "flwr-home"))
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping the client", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    first_refusal: float | None = None
    while True:
        argv = supernode_argv(args, data, key, ca, state, runtime)
        rc, tail = _supervise(
            argv,
            superexec_argv(runtime, ca, args.cold_start),
            env,
            state,
            name,
            args.server,
            stop,
            ca,
        )
        if stop.is_set() or (state / RUN_END_FILE).exists():
            return EXIT_OK
        if not (rc and any(REFUSED in line for line in tail)):
            break
        now = time.monotonic()
        first_refusal = now if first_refusal is None else first_refusal
        if now - first_refusal >= args.activation_grace:
            break
        log.warning(
            "the server refused this device's activation: its key is not registered, or the "
            "server still holds this device's previous session (it expires about a minute "
            "after a crash); retrying in %.0f s (gives up %.0f s after the first refusal)",
            ACTIVATION_RETRY_S,
            args.activation_grace,
        )
        if stop.wait(ACTIVATION_RETRY_S):
            return EXIT_OK
    reason = diagnose(tail)
    log.error(
        "the SuperNode exited with code %s%s; see %s",
        rc,
        f": {reason}" if reason else "",
        state / "supernode.log",
    )
    return EXIT_ERROR if rc else EXIT_OK


class _RetryReporter:
    """Flower's retry lines, replaced by one line that names the address and the cause
    (at most every ``every_s``); after the SuperNode gives up, its SuperExec's retries
    against the stopped node are dropped."""

    def __init__(self, server: str, ca: Path | None, every_s: float = 30.0) -> None:
        self.server, self.ca, self.every_s = server, ca, every_s
        self.last: float | None = None
        self.gave_up = False

    def takes(self, line: str) -> bool:
        if "Giving up reconnection" in line:
            self.gave_up = True
            return False
        if "Connection attempt failed" not in line:
            return False
        now = time.monotonic()
        if not self.gave_up and (self.last is None or now - self.last >= self.every_s):
            self.last = now
            from client.reachability import why_unreachable

            why = why_unreachable(self.server, self.ca) or "the connection failed"
            log.warning("cannot connect to %s: %s; retrying", self.server, why)
        return True


def _supervise(
    argv: list[str],
    superexec: list[str],
    env: dict[str, str],
    state: Path,
    name: str,
    server: str,
    stop: threading.Event,
    ca: Path | None = None,
) -> tuple[int | None, list[str]]:
    """Run one SuperNode and its SuperExec until the SuperNode exits, the run ends or
    ``stop`` is set; the SuperNode's exit code and last lines."""
    from common.processes import Child

    tail: list[str] = []
    retries = _RetryReporter(server, ca)

    def on_line(line: str) -> None:
        tail.append(line)
        del tail[:-200]
        if not retries.takes(line):
            _relay(name, line)

    node = Child(
        "supernode", argv, env=env, log_file=state / "supernode.log", on_line=on_line, cwd=state
    )
    log.info("device %s: SuperNode pid %d connecting to %s", name, node.pid, server)

    def start_superexec() -> Child:
        return Child(
            "superexec",
            superexec,
            env=env,
            log_file=state / "supernode.log",
            on_line=on_line,
            cwd=state,
        )

    execs = start_superexec()
    ended_at: float | None = None
    try:
        while node.poll() is None and not stop.is_set():
            if ended_at is None and _run_ended(state):
                ended_at = time.monotonic()
            # Let the SuperNode send its acknowledgement of the news, and the server
            # collect it, before the node goes offline.
            if ended_at is not None and (
                _acknowledged(tail) or time.monotonic() - ended_at > RUN_END_ACK_S
            ):
                stop.wait(RUN_END_LINGER_S)
                break
            if execs.poll() is not None:
                log.warning("the SuperExec exited with code %s; restarting it", execs.poll())
                execs = start_superexec()
            stop.wait(1.0)
    finally:
        execs.stop()
        rc = node.stop()
    return rc, tail


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
