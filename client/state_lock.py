"""One device per state folder.

A state folder holds one device's per-run state, its Flower home (installed app
bundles) and its delivered encoder. Two ``fedssl client`` processes on one folder
would read each other's state, so the second is refused. The lock is an advisory
``flock`` on ``STATE_DIR/.lock``, held for the life of the client: the kernel drops it
when the process ends, however it ends, so a crashed client never blocks a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO

from common.errors import BadInputError

LOCK_FILE = ".lock"


class StateDirInUseError(BadInputError):
    """Another fedssl client holds this state folder."""


def lock_state_dir(state: Path) -> IO[str]:
    """Hold ``state`` for this process; keep the returned file open while running."""
    fh = open(state / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 (held open)
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        owner = fh.read().strip() or "another process"
        fh.close()
        raise StateDirInUseError(
            f"--state-dir {state} is in use by another fedssl client ({owner}): give each "
            "device its own --state-dir"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    return fh


def device_id(key: Path | None, name: str) -> str:
    """A short, stable name of this device's identity for its state files: a digest of
    its public key (of its name under --insecure, which has no key)."""
    if key is None:
        return hashlib.sha256(f"insecure:{name}".encode()).hexdigest()[:16]
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_ssh_private_key(key.read_bytes(), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return hashlib.sha256(public).hexdigest()[:16]
