"""Whether a refused activation is worth retrying.

A SuperLink answers "Failed to activate SuperNode" both when the device's key is not
registered and when it still counts a previous session of this device as online (for
about a minute after a crash). Only the second goes away by waiting. A device that
has never been activated by this server with this key cannot hold such a session, so
its refusal is certain: it gives up at once, saying what to register. Each state folder
keeps the (server, key) pairs it was ever activated with in ``activations.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.atomic import atomic_write_bytes

ACTIVATIONS_FILE = "activations.json"
ACTIVATED = "SuperNode ID:"  # Flower's line once the server has activated the node


def _read(state: Path) -> list[str]:
    try:
        seen = json.loads((state / ACTIVATIONS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [str(s) for s in seen] if isinstance(seen, list) else []


def _pair(server: str, identity: str) -> str:
    return f"{server} {identity}"


def record_activation(state: Path, server: str, identity: str) -> None:
    """Remember that ``server`` activated the device of key ``identity`` here."""
    seen = _read(state)
    if _pair(server, identity) not in seen:
        seen.append(_pair(server, identity))
        atomic_write_bytes(state / ACTIVATIONS_FILE, json.dumps(seen).encode())


def was_activated(state: Path, server: str, identity: str) -> bool:
    """Whether ``server`` ever activated this key from this state folder."""
    return _pair(server, identity) in _read(state)
