"""The ``fedssl`` command: one entry point, sub-commands owned by their packages.

Sub-command modules are imported only when chosen, so ``fedssl --help`` is instant
and this module (in the framework-free ``common``) never imports Flower itself.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# name -> (module with add_arguments(parser) and run(args) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulations.simulate", "federated SSL pretraining in a local Flower simulation"),
    "evaluate": (
        "simulations.evaluate",
        "linear probe, kNN and few-label evaluation of a saved encoder",
    ),
    "benchmark": (
        "simulations.benchmark",
        "federated SSL against centralized, local-only, supervised and raw baselines",
    ),
    "export": ("client.export", "export a saved encoder to TorchScript or ONNX for devices"),
    "device": (
        "client.device_cli",
        "replay a device's stream through the on-device runtime (decisions, drift, adaptation)",
    ),
    "split": ("simulations.split", "write one .npz per device from a data set and a partition"),
    "certs": ("server.certs", "make the CA, the server certificate and device keys"),
    "server": ("server.daemon", "run the server daemon (SuperLink + the federated SSL run)"),
    "client": ("client.edge", "run an edge client (SuperNode) on a device"),
}

# Flower must never phone home nor pip/uv-install anything at run time.
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedssl",
        description="Federated self-supervised learning with secure aggregation (SecAgg+) on Flower.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    apply_safe_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
