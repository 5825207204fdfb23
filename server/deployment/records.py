"""``STATE_DIR/daemon.json``: which run the server daemon drives and how it stands, so
that a restarted daemon resumes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.atomic import atomic_write_bytes


def read_record(state: Path) -> dict[str, Any]:
    path = state / "daemon.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_record(state: Path, **fields: Any) -> None:
    record = {**read_record(state), **fields}
    atomic_write_bytes(state / "daemon.json", (json.dumps(record, indent=2) + "\n").encode())
