"""``fedssl client``: an edge device's process, a Flower SuperNode with fedssl's node config.

It checks what it can before connecting (the data file, the key's permissions, the CA
certificate), then runs ``flower-supernode`` with TLS and the device's identity key,
its data path and a node-local state folder (per-client SSL state survives restarts),
in ``--isolation process``, beside fedssl's SuperExec (``client.superexec``): every
ClientApp task then passes the app-signature check against the CA before any of the
app's code runs. With ``--stream`` it also runs the device's live agent
(``client.live``), and the rounds train on what the agent stored. When the server is
away it keeps retrying; when the server says the run has ended it exits; SIGTERM or
Ctrl-C stops it and every process it started.
"""

from __future__ import annotations

import argparse
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

from client.activation import was_activated
from client.clientapp_runner import TASK_NICE_ENV
from client.live.agent_process import (
    TASK_NICE,
    AgentKeeper,
    add_stream_arguments,
    check_stream_args,
    node_config_entry,
)
from client.node_supervisor import LOG_FILE, Attempt, supervise
from client.reachability import REFUSED, diagnose
from client.state_lock import device_id, lock_state_dir
from common.errors import EXIT_ERROR, EXIT_OK, BadInputError
from common.messages import RUN_END_FILE
from common.private_files import private_tree, write_secret

# A restarted device is refused while the SuperLink still counts its previous session
# as online (measured: about 65 s after a SIGKILL); the refusal looks exactly like an
# unregistered key's, so a device the server has activated before retries this long
# (one it never activated gives up at once: client.activation).
DEFAULT_ACTIVATION_GRACE_S = 180.0
ACTIVATION_RETRY_S = 10.0
DEFAULT_POLL_INTERVAL_S = 0.5
log = logging.getLogger("fedssl.client")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", required=True, help="the server's HOST:PORT")
    p.add_argument(
        "--data", default="", help="this device's data: an .npz file (x, optional y); or --stream"
    )
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
        "server holds the device's old session for about a minute; a device this server "
        "never activated gives up at once (default: %(default)s)",
    )
    p.add_argument(
        "--allow-plain-updates",
        action="store_true",
        help="also answer a server that asks for unmasked updates (off: SecAgg+ only)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show Flower's per-message lines on the console (they are always in "
        "STATE_DIR/supernode.log)",
    )
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="this device evaluates each delivered global encoder on its data but never trains "
        "(a held-out device)",
    )
    add_stream_arguments(p)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_inputs(args: argparse.Namespace) -> tuple[Path | None, Path | None, Path | None]:
    from common.data.registry import load_dataset
    from common.keyfiles import check_private_key_file

    if not 0 < args.poll_interval <= 60:
        raise BadInputError(f"--poll-interval must be in (0, 60] seconds, got {args.poll_interval}")
    data: Path | None = None
    if args.data:
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
    data: Path | None,
    key: Path | None,
    ca: Path | None,
    state: Path,
    runtime: LocalRuntime,
) -> list[str]:
    identity = device_id(key, args.name or (key.name if key else "device"))
    source = f'data-path="{data}"' if data is not None else node_config_entry(state)
    node_config = f'{source} state-dir="{state}" device-id="{identity}"'
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


def run(args: argparse.Namespace) -> int:
    from common.logs import setup_logging

    setup_logging()
    data, key, ca = _check_inputs(args)  # bad input rises to the CLI (exit 2)
    stream = check_stream_args(args)
    state = private_tree(Path(args.state_dir).expanduser().resolve())
    lock = lock_state_dir(state)  # noqa: F841 (held until the client exits)
    (state / "flwr-home").mkdir(parents=True, exist_ok=True)
    (state / RUN_END_FILE).unlink(missing_ok=True)
    attempt = _attempt(args, data, key, ca, state)
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s: stopping the client", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    agent = None
    if stream is not None:
        agent = AgentKeeper(stream, state, attempt.env, attempt.name)
    try:
        return _connect(args, attempt, key, stop)
    finally:
        if agent is not None:
            agent.stop()


def _connect(
    args: argparse.Namespace, attempt: Attempt, key: Path | None, stop: threading.Event
) -> int:
    """Attempts until the run ends, ``stop`` is set, or the server cannot be joined."""
    state = attempt.state
    first_refusal: float | None = None
    while True:
        rc, tail = supervise(attempt, stop)
        if stop.is_set() or (state / RUN_END_FILE).exists():
            return EXIT_OK
        if not (rc and any(REFUSED in line for line in tail)):
            break
        if not was_activated(state, args.server, attempt.identity):
            return _refused_for_good(attempt, key)
        now = time.monotonic()
        first_refusal = now if first_refusal is None else first_refusal
        if now - first_refusal >= args.activation_grace:
            break
        log.warning(
            "the server refused this device's activation: it may still hold this device's "
            "previous session (it expires about a minute after a crash), or the key is no "
            "longer registered; retrying in %.0f s (gives up %.0f s after the first refusal)",
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
        state / LOG_FILE,
    )
    return EXIT_ERROR if rc else EXIT_OK


def _attempt(
    args: argparse.Namespace, data: Path | None, key: Path | None, ca: Path | None, state: Path
) -> Attempt:
    """What each connection attempt runs: the SuperNode, its SuperExec, their settings."""
    from common.environment import daemon_env

    runtime = LocalRuntime(
        port=args.port or _free_port(),
        secret=write_secret(state / "superexec.secret", secrets.token_hex(32)),
    )
    name = args.name or (key.name if key else "device")
    return Attempt(
        supernode=supernode_argv(args, data, key, ca, state, runtime),
        superexec=superexec_argv(runtime, ca, args.cold_start),
        env=daemon_env(FLWR_HOME=str(state / "flwr-home"), **_task_nice(args)),
        state=state,
        name=name,
        identity=device_id(key, name),
        server=args.server,
        ca=ca,
        verbose=args.verbose,
    )


def _task_nice(args: argparse.Namespace) -> dict[str, str]:
    """Beside a live agent, training and evaluation tasks yield the CPU to decisions."""
    return {TASK_NICE_ENV: str(TASK_NICE)} if args.stream else {}


def _refused_for_good(a: Attempt, key: Path | None) -> int:
    """A device never activated here was refused: its key is not registered (or the
    same key is connected from elsewhere). Waiting cannot help, so say it now."""
    pub = f"{key}.pub" if key is not None else "its .pub file"
    log.error(
        "the server at %s refused device %s: its key (fingerprint %s) is not registered "
        "there. On the server: `fedssl server --register %s ...` (or, if it is "
        "registered, another process with this key is connected). See %s",
        a.server,
        a.name,
        a.identity,
        Path(pub).name,
        a.state / LOG_FILE,
    )
    return EXIT_ERROR
