"""The server's SuperExec: Flower's task loop, starting each ServerApp with its task
token in a private file instead of on its command line.

``fedssl server`` runs the SuperLink with ``--isolation process`` and starts this
process (``python -m server.deployment.superexec``) in its own process group, so stopping the
daemon stops every ServerApp too. The SuperExec secret (``--auth-secret-file``) keeps
other local processes from acquiring the SuperLink's tasks.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from client.flower_internals import OneTaskTypeExecutor, run_superexec_with
from common.private_files import write_secret

log = logging.getLogger("fedssl.server")


class TokenFileExecutor(OneTaskTypeExecutor):
    """Launches ServerApp tasks as ``flwr-serverapp --token-file``, and only for the app
    bundle the daemon submitted (its SHA-256 in ``allowed_app``): a run that anyone else
    submits through the loopback Control API never gets a ServerApp process."""

    task_type = "flwr-serverapp"

    def __init__(self, token_dir: Path, serverapp: str, allowed_app: Path) -> None:
        super().__init__()
        self.token_dir = token_dir
        self.serverapp = serverapp
        self.allowed_app = allowed_app

    def start(self, spec: Any) -> str:
        allowed = self.allowed_app.read_text().strip() if self.allowed_app.is_file() else ""
        if not spec.fab_hash or spec.fab_hash != allowed:
            log.error(
                "refused to run app bundle %s: not the one fedssl server submitted", spec.fab_hash
            )
            return "not the operator's app bundle"
        token = write_secret(self.token_dir / f"task-{spec.task_id}.token", spec.token)
        argv = [self.serverapp, "--runtime-api-address", spec.runtime_api_address]
        argv += ["--token-file", str(token), "--parent-pid", str(os.getpid())]
        if spec.insecure:
            argv.append("--insecure")
        else:
            argv += ["--root-certificates", str(spec.root_certificates_path)]
        self.tasks.start(argv, secret_file=token)
        return ""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m server.deployment.superexec", description=__doc__)
    p.add_argument("--runtime-api-address", required=True, help="the SuperLink's, on 127.0.0.1")
    p.add_argument("--root-certificates", default="", help="CA of the SuperLink's loopback TLS")
    p.add_argument("--auth-secret-file", required=True)
    p.add_argument("--token-dir", required=True, help="private folder for task tokens")
    p.add_argument(
        "--allowed-app", required=True, help="file with the SHA-256 of the one app bundle to run"
    )
    p.add_argument("--parent-pid", type=int, default=None)
    args = p.parse_args(argv)
    local = Path(sys.executable).parent / "flwr-serverapp"
    serverapp = (
        str(local) if local.exists() else (shutil.which("flwr-serverapp") or "flwr-serverapp")
    )
    token_dir = Path(args.token_dir)
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    run_superexec_with(
        TokenFileExecutor(token_dir, serverapp, Path(args.allowed_app)),
        runtime_api_address=args.runtime_api_address,
        root_certificates=args.root_certificates or None,
        auth_secret=Path(args.auth_secret_file).read_bytes(),
        parent_pid=args.parent_pid,
    )


if __name__ == "__main__":
    main()
