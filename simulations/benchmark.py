"""``fedssl benchmark``: federated SSL with SecAgg+ against what a user could do otherwise.

Arms, side by side on one data set and one evaluation protocol: federated SSL
(a real ``fedssl simulate`` run), centralized SSL on the pooled data (upper bound),
local-only SSL (each client alone; mean and worst), a random-init encoder,
supervised training from scratch on the same label budgets, and a linear probe on
raw inputs. Writes ``results.json``, ``results.md`` and PNG plots.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
# The federated arm simulates every client of a round on the few local cores, one after
# another, so SecAgg+'s per-stage timeout (default 300 s, meant for real devices) would
# cut off the clients trained last once a round's training outlasts it (measured:
# Fashion-MNIST, 100 clients, 1 local epoch, 2 cores: 250-500 s per round, 20 of 100
# clients dropped) and the arm would see less data than the others. No simulated client
# drops out, so wait as long as the training takes.
SIMULATION_SECAGG_TIMEOUT_S = 24 * 3600.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", default="hapt", help="hapt | digits | fmnist | npz:PATH (default: %(default)s)"
    )
    p.add_argument(
        "--quick", action="store_true", help="a small budget that finishes in minutes (smoke test)"
    )
    p.add_argument("--method", default="simclr", help="(default: %(default)s)")
    p.add_argument("--fed-algorithm", default="fedavg", help="(default: %(default)s)")
    p.add_argument(
        "--clients", type=int, default=0, help="0 = natural clients / 10 (default: %(default)s)"
    )
    p.add_argument("--partition", default="auto", help="(default: %(default)s)")
    p.add_argument("--rounds", type=int, default=None, help="default 15, quick 4")
    p.add_argument("--local-epochs", type=int, default=None, help="default 2, quick 1")
    p.add_argument(
        "--fraction-train",
        type=float,
        default=1.0,
        help="clients per round, as a fraction; the other arms' epochs shrink to match "
        "(rounds x local-epochs x fraction) (default: %(default)s)",
    )
    p.add_argument(
        "--fractions", default=None, help="label fractions, default 0.01,0.05,0.1 (quick 0.01,0.1)"
    )
    p.add_argument(
        "--seeds", default=None, help="few-label and supervised seeds, default 0,1,2 (quick 0)"
    )
    p.add_argument(
        "--local-clients",
        type=int,
        default=None,
        help="local-only arm on the first N clients (default all, quick 4)",
    )
    p.add_argument("--supervised-steps", type=int, default=None, help="default 1500, quick 200")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="output folder (default: runs/benchmark-DATASET-TIME)")


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def run(args: argparse.Namespace) -> int:
    from common.config import ConfigError, RunConfig
    from common.data.errors import DataError
    from common.logs import setup_logging

    setup_logging()
    q = args.quick
    rounds = args.rounds or (4 if q else 15)
    epochs = args.local_epochs or (1 if q else 2)
    try:
        cfg = RunConfig(
            dataset=args.dataset,
            method=args.method,
            num_clients=args.clients,
            partition=args.partition,
            num_server_rounds=rounds,
            local_epochs=epochs,
            fraction_train=args.fraction_train,
            device=args.device,
            seed=args.seed,
        )
        cfg.check_names()
        fractions = (
            _floats(args.fractions) if args.fractions else ([0.01, 0.1] if q else [0.01, 0.05, 0.1])
        )
        if any(not 0 < f < 1 for f in fractions):
            raise ConfigError("--fractions must lie in (0, 1)")
        plan: dict[str, Any] = {
            "fractions": fractions,
            "seeds": _ints(args.seeds) if args.seeds else ([0] if q else [0, 1, 2]),
            "local_clients": args.local_clients
            if args.local_clients is not None
            else (4 if q else 0),
            "supervised_steps": args.supervised_steps or (200 if q else 1500),
        }
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(args.out or f"runs/benchmark-{cfg.dataset.split(':')[0]}-{stamp}").resolve()
        if (out / "results.json").exists():
            raise ConfigError(f"--out {out} already holds a benchmark; choose a new folder")
        out.mkdir(parents=True, exist_ok=True)
        from simulations.benchmark_arms import run_arms

        results = run_arms(cfg, plan, out, args.fed_algorithm)
    except (ConfigError, DataError) as exc:
        print(f"fedssl benchmark: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from simulations.benchmark_report import write_report

    table = write_report(results, out)
    print(table)
    print(f"\nfedssl benchmark: results in {out}")
    return 0


def simulate_federated(cfg: Any, out: Path, fed_algorithm: str) -> float:
    """A real ``fedssl simulate`` run (SecAgg+) in a child process; returns its wall time."""
    cmd = [
        sys.executable,
        "-m",
        "common.cli",
        "simulate",
        "--dataset",
        cfg.dataset,
        "--method",
        cfg.method,
        "--clients",
        str(cfg.num_clients),
        "--partition",
        cfg.partition,
        "--rounds",
        str(cfg.num_server_rounds),
        "--local-epochs",
        str(cfg.local_epochs),
        "--fraction-train",
        f"{cfg.fraction_train:g}",
        "--seed",
        str(cfg.seed),
        "--device",
        cfg.device,
        "--secagg-timeout",
        f"{SIMULATION_SECAGG_TIMEOUT_S:g}",
        "--no-evaluate",
        "--out",
        str(out),
    ]
    if fed_algorithm != "fedavg":
        cmd += ["--set", f"fed-algorithm={fed_algorithm}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"federated run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


__all__ = ["add_arguments", "run", "simulate_federated"]
