"""One ClientApp task on a device: Flower's ClientApp process behind the app-signature check.

Started by ``client.superexec`` with the task token on stdin. With ``--ca`` the app
bundle must carry the operator's signature (``common.app_signing``); a refused bundle
is never unpacked nor imported, and the server receives the reason as the task's error.
Without ``--ca`` (``fedssl client --insecure``) any bundle runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from client.flower_internals import FabCheck, run_checked_clientapp
from common.app_signing import verify_fab
from common.logs import setup_logging

# Set by `fedssl client --stream`: the task processes run at this niceness, below the
# live agent that makes the device's decisions.
TASK_NICE_ENV = "FEDSSL_TASK_NICE"


def nice_task() -> None:
    """Lower this task process's priority when the device asks for it."""
    value = os.environ.get(TASK_NICE_ENV, "")
    if value.isdigit() and int(value) > 0:
        os.nice(int(value))


def signature_check(ca: Path) -> FabCheck:
    """The device's check of an app bundle: signed by an app-signing certificate of ``ca``."""
    ca_pem = ca.read_bytes()

    def check(fab: bytes, signature: str, override_keys: Iterable[str]) -> str:
        return verify_fab(fab, signature, ca_pem, override_keys)

    return check


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m client.clientapp_runner", description=__doc__)
    p.add_argument("--runtime-api-address", required=True)
    p.add_argument("--ca", default="")
    p.add_argument("--parent-pid", type=int, default=None)
    args = p.parse_args(argv)
    token = sys.stdin.readline().strip()
    if not token:
        sys.exit("clientapp_runner: no task token on stdin")
    setup_logging()
    nice_task()
    # No CA: `fedssl client --insecure`, which has said so once, loudly.
    check = signature_check(Path(args.ca)) if args.ca else None
    run_checked_clientapp(
        check, runtime_api_address=args.runtime_api_address, token=token, parent_pid=args.parent_pid
    )


if __name__ == "__main__":
    main()
