"""The environment of fedssl and of every process it starts: Flower never phones home
nor installs anything at run time, whatever the user's shell says."""

from __future__ import annotations

import os

SAFE_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
# Flower's SuperExec checks for new ClientApp/ServerApp work every second by default;
# each SecAgg+ round has four such hand-offs per device, so a 0.2 s check saves
# about 3 s per round at the cost of a cheap local poll. A user's own value wins.
FAST_POLL_ENV = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2"}


def daemon_env(**extra: str) -> dict[str, str]:
    """The environment of a child the fedssl daemons start."""
    return {**FAST_POLL_ENV, **os.environ, **SAFE_ENV, "PYTHONUNBUFFERED": "1", **extra}


def apply_safe_env() -> None:
    """Forced, not defaulted: a stray value in the user's shell must not turn them on."""
    os.environ.update(SAFE_ENV)
