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

from common.processes import TaskProcesses


class CheckedClientAppExecutor:
    """A Flower SuperExec executor (``flwr.supercore.superexec.executor.Executor``) that
    launches ClientApp tasks only, each through ``client.clientapp_runner``."""

    def __init__(self, ca: Path | None) -> None:
        self.ca = ca
        self.tasks = TaskProcesses()

    def get_eligible_capacity(
        self, supported_task_types: set[Any], **_: Any
    ) -> tuple[set[Any], set[str]]:
        from flwr.supercore.constant import TaskType

        return supported_task_types & {TaskType.CLIENT_APP}, set()

    def wait_for_capacity(self, *_: Any, **__: Any) -> None:
        return None

    def launch(self, spec: Any) -> Any:
        from flwr.supercore.constant import TaskType
        from flwr.supercore.superexec.executor import LaunchResult

        if spec.task_type != TaskType.CLIENT_APP:
            return LaunchResult.failed(f"a device runs ClientApp tasks only, not {spec.task_type}")
        argv = [sys.executable, "-m", "client.clientapp_runner"]
        argv += [
            "--runtime-api-address",
            spec.runtime_api_address,
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.ca is not None:
            argv += ["--ca", str(self.ca)]
        self.tasks.start(argv, stdin_secret=spec.token)
        return LaunchResult.accepted()

    def reconcile(self) -> None:
        self.tasks.reap()

    def close(self) -> None:
        self.tasks.close()


def main(argv: list[str] | None = None) -> None:
    from client.flower_internals import run_superexec_with

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
