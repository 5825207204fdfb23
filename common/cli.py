"""The ``fedssl`` command: one entry point, sub-commands owned by their packages.

Sub-command modules are imported only when chosen, so ``fedssl --help`` is instant
and this module (in the framework-free ``common``) never imports Flower itself.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

import common.cli_clock  # noqa: F401 (first: the command's start time)
from common.config import ConfigError
from common.environment import apply_safe_env
from common.errors import EXIT_BAD_INPUT, EXIT_SIGNAL_BASE, FedsslError
from common.run_options import in_user_terms

# name -> (module with add_arguments(parser) and run(args) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulations.simulate", "federated SSL pretraining in a local Flower simulation"),
    "evaluate": (
        "simulations.evaluate",
        "linear probe, kNN and few-label evaluation of a saved encoder",
    ),
    "benchmark": (
        "simulations.benchmark.cli",
        "federated SSL against centralized, local-only, supervised and raw baselines",
    ),
    "export": ("client.export", "export a saved encoder to TorchScript or ONNX for devices"),
    "device": (
        "simulations.device_replay.cli",
        "replay a device's stream through the on-device runtime (decisions, drift, adaptation)",
    ),
    "split": ("simulations.split", "write one .npz per device from a data set and a partition"),
    "certs": ("server.deployment.certs", "make the CA, the server certificate and device keys"),
    "server": (
        "server.deployment.daemon",
        "run the server daemon (SuperLink + the federated SSL run)",
    ),
    "client": ("client.edge", "run an edge client (SuperNode) on a device"),
}


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
        return EXIT_BAD_INPUT
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except FedsslError as exc:  # written for the user: the message, no traceback
        text = in_user_terms(exc, args) if isinstance(exc, ConfigError) else str(exc)
        print(f"fedssl {args.command}: error: {text}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C: the user knows why, a traceback tells them nothing
        print(f"\nfedssl {args.command}: stopped by SIGINT", file=sys.stderr)
        return EXIT_SIGNAL_BASE + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
