"""The live agent's state on disk, so that a device killed and restarted resumes.

The window store persists by itself. This file holds the rest: the round of the global
encoder the agent decides with, its ONNX export (the adapted one after an adaptation),
and what the runtime has learned (``DeviceRuntime.snapshot``: head, projection, bandit,
drift reference, the torch encoder adaptation trains, the labeled windows, the step
count). ``STATE_DIR/agent/state.pkl`` is written atomically, with a SHA-256 of its
content: a torn or altered file is ignored (the agent starts over from the delivered
encoder) rather than half-loaded. It is a pickle: it lives in the device's private
state folder (mode 0700), written and read by the device alone.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

from common.checked_file import DamagedFileError, read_checked, write_checked

STATE_FILE = "state.pkl"
MAGIC = b"FSAS1\n"
log = logging.getLogger("fedssl.client")


def save_state(folder: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (round, parity, onnx bytes, snapshot, n_actions, shape)."""
    write_checked(folder / STATE_FILE, MAGIC, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


def load_state(folder: Path, n_actions: int, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """The saved state, if there is one that verifies and fits this agent."""
    path = folder / STATE_FILE
    try:
        payload = read_checked(path, MAGIC)
    except DamagedFileError:
        log.warning("%s is damaged (checksum); starting from the delivered encoder", path)
        return None
    if payload is None:
        return None
    state: dict[str, Any] = pickle.loads(payload)  # noqa: S301 (the device's own private file)
    if state.get("n_actions") != n_actions or tuple(state.get("shape", ())) != tuple(shape):
        log.warning(
            "%s was saved for %s actions on windows %s; this agent has %s on %s: not resumed",
            path,
            state.get("n_actions"),
            tuple(state.get("shape", ())),
            n_actions,
            tuple(shape),
        )
        return None
    return state
