"""``fedssl client --stream``: the options of a live device, and its agent's process.

With ``--stream`` the device runs its live agent (``client.live.run``) as a process of
its own beside the SuperNode, for the whole life of the client: it reads the stream,
decides, and fills the window store (``STATE_DIR/store``) from which the device's
federated rounds then train and evaluate (node config ``store-dir``). The device's task
processes run niced (``FEDSSL_TASK_NICE``), so training yields the CPU to decisions.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from client.live.window_store import STORE_FOLDER
from common.errors import BadInputError
from common.processes import Child, plain_text

TASK_NICE = 10  # training and evaluation tasks beside a live agent
log = logging.getLogger("fedssl.client")


def add_stream_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("live stream (instead of --data)")
    g.add_argument(
        "--stream",
        default="",
        metavar="SOURCE",
        help="run the live agent on npz:FILE (replayed at --pace) or stdin (frames from a "
        "sensor process; README: 'Live devices'); rounds then train on what it stored",
    )
    g.add_argument(
        "--pace",
        type=float,
        default=10.0,
        help="npz replay: windows per second (default: %(default)s)",
    )
    g.add_argument("--window-shape", default="", help="stdin: the window's shape, e.g. 6x128")
    g.add_argument(
        "--actions", type=int, default=0, help="number of actions the agent chooses from"
    )
    g.add_argument(
        "--labels-per-class",
        type=int,
        default=10,
        help="labeled windows per class that personalize the agent (default: %(default)s)",
    )
    g.add_argument(
        "--store-max-windows",
        type=int,
        default=10_000,
        help="windows the device keeps; the oldest go first (default: %(default)s)",
    )
    g.add_argument(
        "--decisions-stdout", action="store_true", help="print each decision as a JSON line"
    )


@dataclass(frozen=True)
class StreamSpec:
    source: str
    argv: list[str]  # the agent process, without its state dir


def check_stream_args(args: argparse.Namespace) -> StreamSpec | None:
    """None without ``--stream``; otherwise the agent's command line, checked."""
    if not args.stream:
        if not args.data:
            raise BadInputError("give the device's data: --data FILE, or --stream SOURCE")
        return None
    if args.data:
        raise BadInputError(
            "--data and --stream exclude each other: a live device trains on what it streams"
        )
    if args.actions < 2:
        raise BadInputError(f"--stream needs --actions N (at least 2), got {args.actions}")
    if args.store_max_windows < 1 or args.labels_per_class < 1:
        raise BadInputError("--store-max-windows and --labels-per-class must be at least 1")
    if args.stream.startswith("npz:"):
        from common.data.registry import load_dataset

        path = Path(args.stream[4:]).expanduser().resolve()
        load_dataset(f"npz:{path}")  # DataError names the problem in the file
        source = f"npz:{path}"
    elif args.stream == "stdin":
        from client.live.run import parse_shape

        parse_shape(args.window_shape)
        source = "stdin"
    else:
        raise BadInputError(f"--stream: expected npz:FILE or stdin, got {args.stream!r}")
    argv = [sys.executable, "-m", "client.live.run", "--stream", source, "--pace", str(args.pace)]
    argv += ["--actions", str(args.actions), "--labels-per-class", str(args.labels_per_class)]
    argv += ["--store-max-windows", str(args.store_max_windows)]
    argv += ["--window-shape", args.window_shape] if args.window_shape else []
    argv += ["--echo"] if args.decisions_stdout else []
    return StreamSpec(source, argv)


def node_config_entry(state: Path) -> str:
    return f'store-dir="{state / STORE_FOLDER}"'


def start_agent(spec: StreamSpec, state: Path, env: dict[str, str], name: str) -> Child:
    """The agent's process, for the life of the client; its lines to the console (and
    ``STATE_DIR/agent.log``), its decisions to stdout with ``--decisions-stdout``."""

    def on_line(line: str) -> None:
        text = plain_text(line)
        if text.startswith("{"):
            print(text, flush=True)  # a decision (JSON), for whatever reads our stdout
        elif text:
            print(f"[{name} agent] {text}", file=sys.stderr, flush=True)

    child = Child(
        "agent",
        [*spec.argv, "--state-dir", str(state)],
        env=env,
        log_file=state / "agent.log",
        on_line=on_line,
        cwd=state,
        stdin=sys.stdin if spec.source == "stdin" else subprocess.DEVNULL,
    )
    log.info("live agent pid %d on %s", child.pid, spec.source)
    return child


class AgentKeeper:
    """The agent's process for the life of the client: restarted (after
    ``RESTART_AFTER_S``) when it dies with an error, left alone when its stream ended."""

    RESTART_AFTER_S = 10.0

    def __init__(self, spec: StreamSpec, state: Path, env: dict[str, str], name: str) -> None:
        self.args = (spec, state, env, name)
        self.child = start_agent(*self.args)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="agent-keeper", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            rc = self.child.poll()
            if rc is None:
                continue
            if rc == 0:
                log.info("the live agent ended with its stream; the device goes on training")
                return
            log.warning(
                "the live agent exited with code %s (see %s); restarting it in %.0f s",
                rc,
                self.args[1] / "agent.log",
                self.RESTART_AFTER_S,
            )
            if self.stopping.wait(self.RESTART_AFTER_S):
                return
            self.child = start_agent(*self.args)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.child.stop()
