"""Files only their owner may read: keys, task tokens, a device's data, server state.

The security model trusts the operator of a host, not its other local users: what
fedssl writes that holds secrets or private data is mode 0600 in folders of mode 0700,
from the first byte (no window in which a default umask lets others read).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


def open_private(path: Path) -> BinaryIO:
    """``path`` opened for writing, replaced, with mode 0600 from its first byte."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def write_secret(path: Path, data: str | bytes) -> Path:
    """Write a key, token or private file readable by its owner only (mode 0600)."""
    with open_private(path) as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    return path


def private_tree(root: Path) -> Path:
    """Create ``root`` (mode 0700) or take group and others' access away from it and
    everything below it; set the umask so that what this process and its children
    create from now on is private too."""
    os.umask(0o077)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    return root
