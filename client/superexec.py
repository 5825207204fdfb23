"""The device's SuperExec: Flower's task loop, starting each ClientApp through fedssl's
signature check.

``fedssl client`` runs the SuperNode with ``--isolation process`` and this process
beside it (``python -m client.superexec``). For every ClientApp task it starts
``python -m client.clientapp_runner``, the task token on its stdin, which checks the
app bundle against the device's CA before any of the bundle's code is installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from client.flower_internals import OneTaskTypeExecutor, run_superexec_with


class CheckedClientAppExecutor(OneTaskTypeExecutor):
    """Launches ClientApp tasks, each through ``client.clientapp_runner``."""

    task_type = "flwr-clientapp"

    def __init__(self, ca: Path | None) -> None:
        super().__init__()
        self.ca = ca

    def start(self, spec: Any) -> str:
        argv = [sys.executable, "-m", "client.clientapp_runner"]
        argv += ["--runtime-api-address", spec.runtime_api_address]
        argv += ["--parent-pid", str(os.getpid())]
        if self.ca is not None:
            argv += ["--ca", str(self.ca)]
        self.tasks.start(argv, stdin_secret=spec.token)
        return ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m client.superexec", description=__doc__)
    p.add_argument("--runtime-api-address", required=True, help="the SuperNode's, on 127.0.0.1")
    p.add_argument("--auth-secret-file", required=True, help="the SuperNode's SuperExec secret")
    p.add_argument("--ca", default="", help="CA certificate the app signature must chain to")
    p.add_argument("--parent-pid", type=int, default=None)
    args = p.parse_args(argv)
    executor = CheckedClientAppExecutor(Path(args.ca) if args.ca else None)
    run_superexec_with(
        executor,
        runtime_api_address=args.runtime_api_address,
        root_certificates=None,  # the SuperNode's Runtime API is plaintext on loopback
        auth_secret=Path(args.auth_secret_file).read_bytes(),
        parent_pid=args.parent_pid,
    )


if __name__ == "__main__":
    main()
