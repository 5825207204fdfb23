"""Per-client state on the device's disk, so a restarted client keeps it.

A ClientApp lives for one message; Flower keeps ``context.state`` only as long as the
SuperNode process and the run. BYOL's target, FedU's predictor and FedEMA's scaler
must outlive both (a device reboot, a server restart that resumes the run as a new
Flower run), so each completed round also writes them to ``state-dir``: one
checksummed file per run, replaced atomically.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from common.checked_file import DamagedFileError, read_checked, write_checked

MAGIC = b"FEDSSL-STATE-1\n"
log = logging.getLogger("fedssl.client")


def state_file(state_dir: str | Path, run_key: str, device: str = "") -> Path:
    """The file of one run on one device; ``run_key`` names the run (its output folder on
    the server), ``device`` the device (empty for a simulated client)."""
    key = f"{run_key}|{device}" if device else run_key
    tag = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(state_dir).expanduser() / f"client-state-{tag}.bin"


def save_state(path: Path, blob: bytes) -> None:
    write_checked(path, MAGIC, blob)


def load_state(path: Path) -> bytes | None:
    """The saved blob, or None when there is none or it is corrupt (then said loudly)."""
    try:
        return read_checked(path, MAGIC)
    except DamagedFileError:
        log.warning("local state %s is corrupt or truncated; starting from fresh local state", path)
        return None
