"""The global encoder a device receives after each evaluated round, kept in its state dir.

``STATE_DIR/global/encoder.pt`` is the server's checkpoint of that round, byte for byte
(the same file format as the run's ``encoder.pt``: ready for the device runtime and for
``fedssl export``), and ``global/encoder.json`` says which round it is, its SHA-256 and
the run's key. A delivery whose bytes do not match the checksum the server sent, or that
is not a valid encoder file, is refused and the last good copy stays. Both files are
replaced atomically, the encoder first: after a crash between the two, the metadata
still describes a file that verifies, or ``stored`` says they disagree.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_bytes
from common.errors import BadInputError

GLOBAL_DIR = "global"
ENCODER_FILE = "encoder.pt"
META_FILE = "encoder.json"


class DeliveryError(BadInputError):
    """A delivered encoder failed its checksum or is not an encoder file."""


def check_delivery(payload: bytes, sha256: str, server_round: int) -> dict[str, Any]:
    """Verify the bytes against the server's checksum and as an encoder file; the payload."""
    from common.serialize import CheckpointError, read_encoder_bytes

    got = hashlib.sha256(payload).hexdigest()
    if got != sha256:
        raise DeliveryError(
            f"the encoder of round {server_round} failed its checksum (got {got[:12]}, the "
            f"server sent {sha256[:12]}); kept the previous one"
        )
    try:
        return read_encoder_bytes(payload, f"the encoder of round {server_round}")
    except CheckpointError as exc:
        raise DeliveryError(f"{exc}; kept the previous one") from None


def store(state_dir: Path, payload: bytes, server_round: int, run_key: str) -> Path:
    """Put a verified delivery in place (atomically); return the encoder's path."""
    folder = state_dir / GLOBAL_DIR
    encoder = folder / ENCODER_FILE
    atomic_write_bytes(encoder, payload)
    meta = {
        "round": server_round,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "run-key": run_key,
        "bytes": len(payload),
        "received": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_bytes(folder / META_FILE, (json.dumps(meta, indent=2) + "\n").encode())
    return encoder


def stored(state_dir: Path) -> dict[str, Any] | None:
    """The metadata of the stored encoder when the file matches it; None when there is
    none; DeliveryError when file and metadata disagree (an interrupted update)."""
    folder = state_dir / GLOBAL_DIR
    if not (folder / META_FILE).is_file() or not (folder / ENCODER_FILE).is_file():
        return None
    meta: dict[str, Any] = json.loads((folder / META_FILE).read_text())
    digest = hashlib.sha256((folder / ENCODER_FILE).read_bytes()).hexdigest()
    if digest != meta.get("sha256"):
        raise DeliveryError(
            f"{folder / ENCODER_FILE} does not match {folder / META_FILE} (an interrupted "
            "update); the next delivery replaces both"
        )
    return meta
