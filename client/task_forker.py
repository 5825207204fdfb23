"""A warm parent for a device's ClientApp tasks: imports once, forks one child per task.

Flower 1.42 runs every message in a new ClientApp process, and each one spent about
1.5 CPU-seconds importing Flower and torch before it could start: five times per round
(four SecAgg+ stages and the evaluation), on every device. ``client.superexec`` starts
this process once, beside the SuperNode. It imports Flower's ClientApp process, torch
and fedssl's handlers, and then reads task tokens from stdin, one per line; for each
it forks a child that runs the task exactly as ``client.clientapp_runner`` would
(signature check first, then Flower's ClientApp process) and exits. Each task still
has a process of its own, so a crash or a leak in one task ends with it.

The parent never starts a thread, a gRPC channel or a torch operation, so a fork is
safe; each child reseeds numpy's global generator (Flower's SecAgg+ quantization draws
from it), as a fresh process would. On SIGTERM, or when its stdin closes, the parent
stops its children and exits (its stdin closes when the SuperExec is gone); children
also exit when the parent is gone (Flower's parent-process monitor).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

from client.clientapp_runner import nice_task, signature_check
from client.flower_internals import FabCheck, run_checked_clientapp


def warm_up() -> None:
    """Import what every task needs: Flower's ClientApp process, torch and fedssl's
    handlers (about 1.5 CPU-seconds), once, in ``client.task_forker``'s parent. (A cold
    ``client.clientapp_runner`` imports only what its message needs.) The
    bundle's ClientApp is fedssl's own ``client.client_app``, which the bundle's
    signature vouches for."""
    import flwr.supernode.runtime.run_clientapp  # noqa: F401
    import torch  # noqa: F401

    import client.client_app  # noqa: F401
    import common.local_round  # noqa: F401


class TaskForker:
    def __init__(self, runtime_api_address: str, check: FabCheck | None) -> None:
        self.address = runtime_api_address
        self.check = check
        self.children: set[int] = set()

    def serve(self, lines: Iterable[str]) -> None:
        """Fork a task per token until stdin closes."""
        for line in lines:
            self.reap()
            token = line.strip()
            if token:
                self.fork(token)
        self.stop()

    def fork(self, token: str) -> None:
        pid = os.fork()
        if pid:
            self.children.add(pid)
            return
        self._run_child(token)  # never returns

    def _run_child(self, token: str) -> None:
        code = 1
        try:
            import numpy as np

            from common.logs import setup_logging

            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            nice_task()
            np.random.seed(int.from_bytes(os.urandom(4), "little"))
            setup_logging()
            run_checked_clientapp(
                self.check,
                runtime_api_address=self.address,
                token=token,
                parent_pid=os.getppid(),
            )
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 (a task's failure ends the task, not the parent)
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def reap(self) -> None:
        for pid in list(self.children):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                self.children.discard(pid)

    def stop(self, grace: float = 5.0) -> None:
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.children.clear()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m client.task_forker", description=__doc__)
    p.add_argument("--runtime-api-address", required=True)
    p.add_argument("--ca", default="")
    args = p.parse_args(argv)
    warm_up()
    check = signature_check(Path(args.ca)) if args.ca else None  # None: --insecure
    forker = TaskForker(args.runtime_api_address, check)

    def on_term(signum: int, frame: FrameType | None) -> None:
        forker.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    forker.serve(sys.stdin)


if __name__ == "__main__":
    main()
