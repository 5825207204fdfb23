"""Run a ``fedssl`` command as a user would: a subprocess, Flower's telemetry and
runtime dependency installation off, output captured for the assertions."""

from __future__ import annotations

import os
import subprocess
import sys

QUIET_FLOWER = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}


def run_cli(
    command: str, *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "common.cli", command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **QUIET_FLOWER, **(env or {})},
    )
