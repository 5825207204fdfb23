"""Run a ``fedssl`` command as a user would: a subprocess, Flower's telemetry and
runtime dependency installation off, output captured for the assertions; or, for
refusals that end before any work, the same ``main()`` in this process (a subprocess
costs seconds of imports per case)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from common.cli import main

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


def run_main(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    """``fedssl ARGV`` in this process: its exit code (argparse's too) and its stderr."""
    # The fedssl log handler writes to the stderr of the test that made it: make a new one.
    monkeypatch.setattr(logging.getLogger("fedssl"), "handlers", [])
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses with SystemExit(2)
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err
