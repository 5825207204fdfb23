"""Private key files: refuse ones that other users can read (as ssh does)."""

from __future__ import annotations

import stat
from pathlib import Path

from common.errors import BadInputError


class KeyFileError(BadInputError, PermissionError):
    """A private key file is missing or readable by group or others."""


def check_private_key_file(path: str | Path) -> Path:
    """Refuse a private key that is missing or that group or others can access."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise KeyFileError(f"private key {p} does not exist (make one with `fedssl certs`)")
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"private key {p} has mode {mode:04o}: group or others can access it; "
            f"run `chmod 600 {p}`"
        )
    return p
