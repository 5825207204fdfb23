"""Small state files that a crash or a flipped bit must not turn into wrong state.

A file is ``MAGIC | SHA-256(blob) | blob``, replaced atomically (``common.atomic``):
a reader gets the blob that was written, or knows that it did not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from common.atomic import atomic_write_bytes
from common.errors import BadInputError


class DamagedFileError(BadInputError):
    """A checked file is truncated, altered or of another kind."""


def write_checked(path: Path, magic: bytes, blob: bytes) -> None:
    atomic_write_bytes(path, magic + hashlib.sha256(blob).digest() + blob)


def read_checked(path: Path, magic: bytes) -> bytes | None:
    """The blob; None when there is no file; DamagedFileError when it does not verify."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    head, digest, blob = (
        data[: len(magic)],
        data[len(magic) : len(magic) + 32],
        data[len(magic) + 32 :],
    )
    if head != magic or hashlib.sha256(blob).digest() != digest:
        raise DamagedFileError(f"{path} is damaged (truncated or altered)")
    return blob
