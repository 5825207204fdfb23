"""``fedssl simulate``: federated SSL with SecAgg+ on Flower's simulation engine (Ray).

Every simulated client is a Flower SuperNode whose ClientApp runs in a Ray actor;
the ServerApp runs the same code as in deployment. Config errors and data errors
are reported before Ray starts. SIGINT or SIGTERM stops a run cleanly (Ray shut down,
every finished round kept), and ``--resume`` continues it from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from common.cli_clock import STARTED
from common.config_checks import check_names, check_secagg_cohort
from common.config_values import ConfigError
from common.errors import EXIT_FAILED_ROUNDS, EXIT_OK, EXIT_SIGNAL_BASE
from common.processes import StopSignal, exit_at_once, stop_signals_raise
from common.threads import THREADS_ENV

if TYPE_CHECKING:
    from common.config import RunConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    from common.run_options import add_run_options

    add_run_options(p)
    g = p.add_argument_group("simulation")
    g.add_argument(
        "--cpus-per-client",
        type=float,
        default=1.0,
        help="Ray CPUs per simulated client (default: %(default)s)",
    )
    g.add_argument(
        "--gpus-per-client",
        type=float,
        default=0.0,
        help="Ray GPUs per simulated client (default: %(default)s)",
    )
    g.add_argument(
        "--ray-address",
        default="",
        metavar="HOST:PORT",
        help="run the simulated clients on this existing Ray cluster (`ray start --head`; "
        "'auto' finds a local one) instead of a private Ray on this machine",
    )
    g.add_argument(
        "--config",
        default="",
        metavar="FILE.json",
        help="start from these run-config keys (a JSON object); flags and --set override them",
    )
    g.add_argument(
        "--out", default="", help="output folder (default: runs/DATASET-METHOD-TIMESTAMP)"
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the stopped run in --out after its last finished round, with the "
        "options it was started with (flags may change --rounds, --secagg-timeout and "
        "--max-failed-rounds only)",
    )


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from common.run_options import config_from_args as build
    from server.run import default_out_dir

    if args.resume:
        return _resume_config(args)
    cfg = build(args, set_items=args.set, config_file=args.config)
    out = (
        Path(args.out) if args.out else (Path(cfg.out_dir) if cfg.out_dir else default_out_dir(cfg))
    )
    return cfg.replace(out_dir=str(out.expanduser().resolve()))


def _resume_config(args: argparse.Namespace) -> RunConfig:
    """The stopped run's own config, with the flags given now on top; a run that is
    missing, finished or would change is refused here, before Ray starts."""
    from common.run_options import config_from_args as build
    from server.resume import check_same_run, unfinished_run_config

    if not args.out:
        raise ConfigError("--resume needs --out: the folder of the stopped run")
    out = Path(args.out).expanduser().resolve()
    saved = unfinished_run_config(out)
    if saved is None:
        raise ConfigError(f"--resume: {out} holds no run to continue (no config.json)")
    cfg = build(args, defaults=saved, set_items=args.set, config_file=args.config)
    cfg = cfg.replace(out_dir=str(out), resume=True)
    check_same_run(saved, cfg)
    return cfg


def preflight(cfg: RunConfig) -> int:
    """Check names, the output folder, the data, its partition and SecAgg+ limits before
    any process starts; return the number of simulated nodes."""
    from common.client_data import client_indices, eval_client_count
    from common.data.partition import MIN_CLIENT_SAMPLES
    from server.outputs import RUN_FILES

    check_names(cfg)
    out = Path(cfg.out_dir)
    if not cfg.resume and any((out / name).exists() for name in RUN_FILES):
        raise ConfigError(
            f"--out {out} already holds a run; choose a new folder (or --resume a stopped one)"
        )
    parts = client_indices(cfg)
    too_small = [i for i, p in enumerate(parts) if len(p) < MIN_CLIENT_SAMPLES]
    if too_small:
        raise ConfigError(
            f"clients {too_small[:10]} hold fewer than {MIN_CLIENT_SAMPLES} samples; "
            "use fewer clients"
        )
    check_secagg_cohort(cfg, cfg.clients_per_round(len(parts)))
    return len(parts) + eval_client_count(cfg)  # evaluation-only clients are nodes too


def run(args: argparse.Namespace) -> int:
    from common.logs import setup_logging

    setup_logging()
    log = logging.getLogger("fedssl")
    cfg = config_from_args(args)  # errors rise to the CLI, reported before Ray starts
    n_nodes = preflight(cfg)
    return simulate(cfg, n_nodes, args.cpus_per_client, args.gpus_per_client, log, args.ray_address)


def simulate(
    cfg: RunConfig, n_nodes: int, cpus: float, gpus: float, log: logging.Logger, ray_address: str = ""
) -> int:  # fmt: skip
    _simulation_env(cfg, cpus)
    from flwr.simulation import run_simulation

    from client.client_app import app as client_app
    from server.run import RunFailedError
    from server.server_app import make_server_app
    from simulations.flower_vce import use_single_pass_delivery
    from simulations.ray_cluster import join_cluster

    chatter = _flower_to_file(Path(cfg.out_dir) / "logs" / "flower.log")
    backend: dict[str, Any] = {"client_resources": {"num_cpus": cpus, "num_gpus": gpus}}
    if ray_address:
        where = join_cluster(ray_address)  # Flower then uses this Ray as it is
    else:
        total_cpus = os.cpu_count() or 1
        # Ray's workers print to their own log files, not to this console.
        backend["init_args"] = {
            "num_cpus": total_cpus, "include_dashboard": False, "log_to_driver": False
        }  # fmt: skip
        where = f"a private Ray of {total_cpus} CPUs on this machine"
    log.info(
        "starting Flower simulation: %d nodes, %s CPU each, on %s (Flower's log: %s)",
        n_nodes,
        cpus,
        where,
        chatter,
    )
    use_single_pass_delivery()  # one walk of the link state per sweep, not one per node
    failed_msg = None
    with stop_signals_raise(on_stop=_flower_console_off):
        try:
            run_simulation(
                server_app=make_server_app(cfg),
                client_app=client_app,
                num_supernodes=n_nodes,
                backend_config=backend,  # type: ignore[arg-type]
            )
        except RunFailedError as exc:
            failed_msg = str(exc)
        except StopSignal as stop:
            _stopped(cfg, stop, log)
    summary_path = Path(cfg.out_dir) / "summary.json"
    if not summary_path.is_file():
        raise RunFailedError(f"the run ended without a summary ({summary_path}); see {chatter}")
    print_summary(json.loads(summary_path.read_text()), time.monotonic() - STARTED, cfg.resume)
    if failed_msg:
        print(f"fedssl simulate: run FAILED: {failed_msg}", file=sys.stderr)
        return EXIT_FAILED_ROUNDS
    return EXIT_OK


def _stopped(cfg: RunConfig, stop: StopSignal, log: logging.Logger) -> NoReturn:
    """Say what is kept and how to go on, make sure Ray is down, and end the process."""
    import ray

    from server.outputs import read_rows

    out = Path(cfg.out_dir)
    if (out / "config.json").is_file():
        last = max((r["round"] for r in read_rows(out) if r.get("completed")), default=0)
        kept = {0: "no round finished", 1: "round 1 is kept"}.get(last, f"rounds 1-{last} are kept")
        hint = f"continue with: fedssl simulate --resume --out {out}"
        log.warning("stopped by %s; %s in %s; %s", stop.signal_name, kept, out, hint)
    else:
        log.warning("stopped by %s before round 1; nothing to resume", stop.signal_name)
    if ray.is_initialized():  # Flower shuts Ray down itself once its runtime has started
        ray.shutdown()
    exit_at_once(EXIT_SIGNAL_BASE + stop.signum)


def _simulation_env(cfg: RunConfig, cpus: float) -> None:
    os.environ[THREADS_ENV] = str(max(1, int(cpus)))
    if not cfg.secure_aggregation:
        # The simulated nodes must agree to send unmasked updates (client/mods/secagg.py).
        os.environ["FEDSSL_ALLOW_PLAIN_UPDATES"] = "1"
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # Ray's GCS keeps an event record (~4 KB) per task, i.e. per SecAgg+ stage of every
    # client, up to 100,000 by default: a long run grew by ~1.4 MB per 100-client round
    # (simulations.bench.load). Nothing here reads task events; keep the last 1,000.
    os.environ.setdefault("RAY_task_events_max_num_task_in_gcs", "1000")
    # Keep Ray's current behaviour (no GPUs hidden when a client asks for none) without
    # its FutureWarning about changing it.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


def _flower_to_file(path: Path) -> Path:
    """Flower's own log lines (deprecation notices, per-message chatter) go to ``path``;
    its errors still reach the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flwr_log = logging.getLogger("flwr")
    for handler in list(flwr_log.handlers):
        flwr_log.removeHandler(handler)
    to_file = logging.FileHandler(path)
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.ERROR)
    console.setFormatter(logging.Formatter("flower: %(levelname)s %(message)s"))
    flwr_log.addHandler(to_file)
    flwr_log.addHandler(console)
    flwr_log.setLevel(logging.INFO)
    flwr_log.propagate = False
    return path


def _flower_console_off() -> None:
    """A stopped run's in-flight messages fail in Flower's workers as Ray goes down:
    expected, so they go to Flower's log file only."""
    for handler in logging.getLogger("flwr").handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.CRITICAL + 1)


def print_summary(summary: dict[str, Any], total: float, resumed: bool = False) -> None:
    """The run's outcome; ``seconds`` is the run itself (summary.json's figure; of a
    resumed run, the part since it resumed), ``total`` everything since the command
    started (imports, Ray's start-up, the probe)."""
    lines = [
        "",
        f"fedssl: {summary['status']} — {summary['rounds_completed']} rounds completed, "
        f"{summary['rounds_failed']} failed "
        f"({'SecAgg+' if summary['secure_aggregation'] else 'plain FedAvg'}); "
        f"the {'resumed part' if resumed else 'run'} took {summary['seconds']:.0f} s, "
        f"{total:.0f} s in all",
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
    from server.fed_eval_summary import final_line

    evaluated = final_line(summary)
    if evaluated:
        lines.append(f"  {evaluated}")
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
