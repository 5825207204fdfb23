"""The device's SuperExec: Flower's task loop, starting each ClientApp through fedssl's
signature check.

``fedssl client`` runs the SuperNode with ``--isolation process`` and this process
beside it (``python -m client.superexec``). For every ClientApp task it starts
``python -m client.clientapp_runner``, the task token on its stdin, which checks the
app bundle against the device's CA before any of the bundle's code is installed. By
default a warm parent forks those processes (``client.task_forker``; ``--cold``: none).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from client.flower_internals import OneTaskTypeExecutor, run_superexec_with

log = logging.getLogger("fedssl.client")


class CheckedClientAppExecutor(OneTaskTypeExecutor):
    """Launches ClientApp tasks, each in a process of its own behind the signature check.

    ``warm`` on: the processes are forked by ``client.task_forker``, which has imported
    Flower, torch and fedssl's handlers once; off (or if the forker is gone): each one
    starts cold, through ``client.clientapp_runner``.
    """

    task_type = "flwr-clientapp"

    def __init__(self, ca: Path | None, runtime_api_address: str, warm: bool = True) -> None:
        super().__init__()
        self.ca = ca
        self.address = runtime_api_address
        self.forker: subprocess.Popen[bytes] | None = None
        if warm:
            self.forker = self.tasks.start_fed(self._argv("client.task_forker", self.address))

    def _argv(self, module: str, address: str) -> list[str]:
        argv = [sys.executable, "-m", module, "--runtime-api-address", address]
        if module == "client.clientapp_runner":
            argv += ["--parent-pid", str(os.getpid())]
        return argv + (["--ca", str(self.ca)] if self.ca is not None else [])

    def start(self, spec: Any) -> str:
        address, forker = spec.runtime_api_address, self.forker
        if forker is not None and address == self.address and self.tasks.feed(forker, spec.token):
            return ""
        self.tasks.start(self._argv("client.clientapp_runner", address), stdin_secret=spec.token)
        if forker is not None and forker.poll() is not None:
            log.warning("the task forker exited (%s); started this task cold", forker.returncode)
            self.forker = self.tasks.start_fed(self._argv("client.task_forker", self.address))
        return ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m client.superexec", description=__doc__)
    p.add_argument("--runtime-api-address", required=True, help="the SuperNode's, on 127.0.0.1")
    p.add_argument("--auth-secret-file", required=True, help="the SuperNode's SuperExec secret")
    p.add_argument("--ca", default="", help="CA certificate the app signature must chain to")
    p.add_argument("--parent-pid", type=int, default=None)
    p.add_argument("--cold", action="store_true", help="start each task's process cold")
    args = p.parse_args(argv)
    ca = Path(args.ca) if args.ca else None
    executor = CheckedClientAppExecutor(ca, args.runtime_api_address, warm=not args.cold)
    run_superexec_with(
        executor,
        runtime_api_address=args.runtime_api_address,
        root_certificates=None,  # the SuperNode's Runtime API is plaintext on loopback
        auth_secret=Path(args.auth_secret_file).read_bytes(),
        parent_pid=args.parent_pid,
    )


if __name__ == "__main__":
    main()
