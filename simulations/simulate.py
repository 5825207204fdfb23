"""``fedssl simulate``: federated SSL with SecAgg+ on Flower's simulation engine (Ray).

Every simulated client is a Flower SuperNode whose ClientApp runs in a Ray actor;
the ServerApp runs the same code as in deployment. Config errors and data errors
are reported before Ray starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from common.config import RunConfig

EXIT_FAILED_ROUNDS = 3
EXIT_BAD_INPUT = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    from common.config import RunConfig

    d = RunConfig()
    p.add_argument(
        "--dataset",
        default=d.dataset,
        help="hapt | digits | fmnist | npz:PATH (default: %(default)s)",
    )
    p.add_argument(
        "--clients",
        type=int,
        default=d.num_clients,
        help="number of clients; 0 = one per natural client (HAPT: the 21 training users), else 10 (default: %(default)s)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=d.num_server_rounds,
        help="server rounds (default: %(default)s)",
    )
    p.add_argument(
        "--partition",
        default=d.partition,
        help="auto | natural | iid | dirichlet:ALPHA (default: %(default)s)",
    )
    p.add_argument(
        "--method",
        default=d.method,
        help="SSL method: simclr | byol | simsiam (default: %(default)s)",
    )
    p.add_argument(
        "--fed-algorithm",
        default=d.fed_algorithm,
        help="client-side update: fedavg | fedema | fedu (default: %(default)s)",
    )
    p.add_argument(
        "--local-epochs",
        type=int,
        default=d.local_epochs,
        help="local epochs per round (default: %(default)s)",
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="(default: %(default)s)")
    p.add_argument(
        "--lr",
        type=float,
        default=d.learning_rate,
        help="Adam learning rate (default: %(default)s)",
    )
    p.add_argument(
        "--lr-schedule",
        default=d.lr_schedule,
        choices=["constant", "cosine"],
        help="local learning rate across rounds (default: %(default)s)",
    )
    p.add_argument(
        "--fraction-train",
        type=float,
        default=d.fraction_train,
        help="fraction of clients per round (default: %(default)s)",
    )
    p.add_argument(
        "--no-secure-aggregation",
        action="store_true",
        help="plain FedAvg, for comparison only: the server then sees each client's update",
    )
    p.add_argument(
        "--num-shares",
        type=int,
        default=d.num_shares,
        help="SecAgg+ neighbourhood size; 0 = auto (default: %(default)s)",
    )
    p.add_argument(
        "--reconstruction-threshold",
        type=int,
        default=d.reconstruction_threshold,
        help="SecAgg+ shares needed to unmask; 0 = auto majority (default: %(default)s)",
    )
    p.add_argument(
        "--secagg-timeout",
        type=float,
        default=d.secagg_timeout,
        help="seconds each SecAgg+ stage waits for clients (default: %(default)s)",
    )
    p.add_argument(
        "--max-failed-rounds",
        type=int,
        default=d.max_failed_rounds,
        help="failed rounds tolerated before the run counts as failed (default: %(default)s)",
    )
    p.add_argument(
        "--dp-noise-multiplier",
        type=float,
        default=d.dp_noise_multiplier,
        help="central DP: Gaussian noise std on the aggregate, in units of the clipping norm; "
        "0 = off (default: %(default)s)",
    )
    p.add_argument(
        "--dp-clipping-norm",
        type=float,
        default=d.dp_clipping_norm,
        help="central DP: L2 norm each client clips its delta to (needed with noise; at most "
        "clipping-range under SecAgg+); 0 = off (default: %(default)s)",
    )
    p.add_argument(
        "--dp-delta",
        type=float,
        default=d.dp_delta,
        help="central DP: the delta at which epsilon is reported (default: %(default)s)",
    )
    p.add_argument("--no-evaluate", action="store_true", help="skip the final linear probe")
    p.add_argument("--device", default=d.device, help="cpu | cuda | auto (default: %(default)s)")
    p.add_argument(
        "--cpus-per-client",
        type=float,
        default=1.0,
        help="Ray CPUs per simulated client (default: %(default)s)",
    )
    p.add_argument(
        "--gpus-per-client",
        type=float,
        default=0.0,
        help="Ray GPUs per simulated client (default: %(default)s)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other run-config key, e.g. --set clipping-range=4 (repeatable; see README)",
    )
    p.add_argument(
        "--out", default="", help="output folder (default: runs/DATASET-METHOD-TIMESTAMP)"
    )
    p.add_argument("--seed", type=int, default=d.seed, help="(default: %(default)s)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from common.config import RunConfig, parse_set_items
    from server.run import default_out_dir

    cfg = RunConfig(
        dataset=args.dataset,
        partition=args.partition,
        num_clients=args.clients,
        method=args.method,
        fed_algorithm=args.fed_algorithm,
        num_server_rounds=args.rounds,
        fraction_train=args.fraction_train,
        local_epochs=args.local_epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_schedule=args.lr_schedule,
        seed=args.seed,
        device=args.device,
        secure_aggregation=not args.no_secure_aggregation,
        num_shares=args.num_shares,
        reconstruction_threshold=args.reconstruction_threshold,
        secagg_timeout=args.secagg_timeout,
        max_failed_rounds=args.max_failed_rounds,
        evaluate=not args.no_evaluate,
        dp_noise_multiplier=args.dp_noise_multiplier,
        dp_clipping_norm=args.dp_clipping_norm,
        dp_delta=args.dp_delta,
    )
    if args.set:
        cfg = RunConfig.from_flat({**cfg.to_flat(), **parse_set_items(args.set)})
    out = Path(args.out) if args.out else default_out_dir(cfg)
    cfg = cfg.replace(out_dir=str(out.expanduser().resolve()))
    cfg.validate()
    return cfg


def preflight(cfg: RunConfig) -> int:
    """Check names, the output folder, the data, its partition and SecAgg+ limits before
    any process starts; return the number of clients."""
    from common.client_data import client_indices
    from common.config import ConfigError
    from server.outputs import RUN_FILES

    cfg.check_names()
    out = Path(cfg.out_dir)
    if any((out / name).exists() for name in RUN_FILES):
        raise ConfigError(f"--out {out} already holds a run; choose a new folder")
    parts = client_indices(cfg)
    too_small = [i for i, p in enumerate(parts) if len(p) < 2]
    if too_small:
        raise ConfigError(f"clients {too_small[:10]} hold fewer than 2 samples; use fewer clients")
    cfg.validate_for_clients(cfg.clients_per_round(len(parts)))
    return len(parts)


def run(args: argparse.Namespace) -> int:
    from common.config import ConfigError
    from common.data.errors import DataError
    from common.logs import setup_logging

    setup_logging()
    log = logging.getLogger("fedssl")
    try:
        cfg = config_from_args(args)
        n_clients = preflight(cfg)
    except (ConfigError, DataError) as exc:
        print(f"fedssl simulate: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return simulate(cfg, n_clients, args.cpus_per_client, args.gpus_per_client, log)


def simulate(cfg: RunConfig, n_clients: int, cpus: float, gpus: float, log: logging.Logger) -> int:
    threads = max(1, int(cpus))
    os.environ["FEDSSL_TORCH_THREADS"] = str(threads)
    if not cfg.secure_aggregation:
        # The simulated nodes must agree to send unmasked updates (client/secagg.py).
        os.environ["FEDSSL_ALLOW_PLAIN_UPDATES"] = "1"
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Ray's GCS keeps an event record (~4 KB) per task, i.e. per SecAgg+ stage of every
    # client, up to 100,000 by default: a long run grew by ~1.4 MB per 100-client round
    # (simulations.bench_load). Nothing here reads task events; keep the last 1,000.
    os.environ.setdefault("RAY_task_events_max_num_task_in_gcs", "1000")
    from flwr.simulation import run_simulation

    from client.client_app import app as client_app
    from server.run import RunFailedError
    from server.server_app import make_server_app

    logging.getLogger("flwr").setLevel(logging.WARNING)
    total_cpus = os.cpu_count() or 1
    backend = {
        "client_resources": {"num_cpus": cpus, "num_gpus": gpus},
        "init_args": {"num_cpus": total_cpus, "include_dashboard": False},
    }
    log.info(
        "starting Flower simulation: %d clients, %s CPU each, %d CPUs in all",
        n_clients,
        cpus,
        total_cpus,
    )
    t0 = time.perf_counter()
    failed_msg = None
    try:
        run_simulation(
            server_app=make_server_app(cfg),
            client_app=client_app,
            num_supernodes=n_clients,
            backend_config=backend,  # type: ignore[arg-type]
        )
    except RunFailedError as exc:
        failed_msg = str(exc)
    wall = time.perf_counter() - t0
    summary_path = Path(cfg.out_dir) / "summary.json"
    if not summary_path.is_file():
        print(
            f"fedssl simulate: error: the run ended without a summary ({summary_path})",
            file=sys.stderr,
        )
        return 1
    summary = json.loads(summary_path.read_text())
    print_summary(summary, wall)
    if failed_msg:
        print(f"fedssl simulate: run FAILED: {failed_msg}", file=sys.stderr)
        return EXIT_FAILED_ROUNDS
    return 0


def print_summary(summary: dict[str, Any], wall: float) -> None:
    lines = [
        "",
        f"fedssl: {summary['status']} — {summary['rounds_completed']} rounds completed, "
        f"{summary['rounds_failed']} failed, {wall:.0f} s wall "
        f"({'SecAgg+' if summary['secure_aggregation'] else 'plain FedAvg'})",
    ]
    probe = summary.get("linear_probe") or {}
    if "federated" in probe:
        fed, rnd = probe["federated"], probe["random_init"]
        lines.append(
            f"  linear probe: federated {fed['accuracy']:.1%} vs random-init {rnd['accuracy']:.1%} "
            f"(macro-F1 {fed['macro_f1']:.3f} vs {rnd['macro_f1']:.3f})"
        )
        lines.append(f"  protocol: {probe['protocol']}")
    elif "skipped" in probe:
        lines.append(f"  linear probe skipped: {probe['skipped']}")
    dp = summary.get("differential_privacy")
    if dp:
        eps = dp["epsilon"]
        lines.append(
            f"  central DP: clipping norm {dp['clipping_norm']:g}, noise multiplier "
            f"{dp['noise_multiplier']:g}: "
            + (
                f"epsilon {eps:.3g} at delta {dp['delta']:g} after {dp['rounds_noised']} noised rounds"
                if eps is not None
                else "no noise, no privacy guarantee"
            )
        )
    lines.append(f"  encoder: {summary['encoder']}  (common.serialize.load_encoder(path))")
    print("\n".join(lines), flush=True)
