"""What a run needs before round 1: its clients, the input shape, where it starts from
(round 1, or the checkpoint a resumed run continues from), its strategy."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np

from common.client_data import eval_client_count
from common.config import ConfigError, RunConfig
from common.config_checks import check_names, check_secagg_cohort
from common.local_round import initial_global_arrays
from common.messages import training_config
from common.server_opt import ServerOptConfig
from server.outputs import RunOutputs
from server.resume import RESOLVED_CLIENTS, check_same_run, find_resume_point
from server.strategy import DeltaFedAvg

log = logging.getLogger("fedssl.server")

# SecAgg+ weight bound when devices bring their own data (node-data): a device with
# more samples than this is weighted as if it had this many.
DEPLOYMENT_MAX_WEIGHT = 4096.0


@dataclass(frozen=True)
class RunSetup:
    cfg: RunConfig  # max-weight and out-dir resolved
    n_clients: int
    per_round: int
    shape: tuple[int, ...]
    init: list[np.ndarray]  # the round-0 (random) global arrays
    first_round: int
    start_arrays: list[np.ndarray]
    out: RunOutputs
    n_eval: int = 0  # evaluation-only clients (simulation)
    label_range: int = 0  # devices' labels must be < this (0 = unknown: the server has no data)
    eval_classes: int = 0  # labels 0..eval_classes-1 are evaluated (0 = all)

    @property
    def nodes(self) -> int:
        """How many nodes the first round waits for."""
        return self.n_clients + self.n_eval


def prepare_run(cfg: RunConfig) -> RunSetup:
    """Resolve the run's clients and shape, open its outputs, find where it starts."""
    check_names(cfg)
    cfg, n_clients = _resolve_clients(cfg)
    per_round = cfg.clients_per_round(n_clients)
    check_secagg_cohort(cfg, per_round)
    shape = input_shape(cfg)
    out = RunOutputs(cfg.out_dir, resume=cfg.resume)
    cfg = cfg.replace(out_dir=str(out.dir))
    init = initial_global_arrays(cfg, shape)
    first_round, start = 1, init
    if cfg.resume:
        check_same_run(out.read_json("config.json"), cfg)
        point = find_resume_point(out)
        first_round, start = point.next_round, point.arrays
        log.info(
            "resuming %s at round %d from the checkpoint of round %d",
            out.dir,
            first_round,
            point.checkpoint_round,
        )
        if cfg.server_momentum > 0 or cfg.server_optimizer != "fedavg":
            log.warning("resume: the server optimizer's state restarts from zero")
    out.write_json(
        "config.json", {**cfg.replace(resume=False).to_flat(), RESOLVED_CLIENTS: n_clients}
    )
    n_eval = 0 if cfg.node_data else eval_client_count(cfg)
    label_range, eval_classes = eval_labels(cfg)
    setup = RunSetup(cfg, n_clients, per_round, shape, init, first_round, start, out)
    return replace(setup, n_eval=n_eval, label_range=label_range, eval_classes=eval_classes)


def eval_labels(cfg: RunConfig) -> tuple[int, int]:
    """(label range, evaluated classes) for the devices' evaluation, from the server's
    data set when it has one (HAPT: its 12 labels, of which the 6 basic activities count)."""
    from common.client_data import load_with_split
    from common.data.hapt import HAPT_BASIC_CLASSES

    if cfg.node_data and not cfg.evaluate and cfg.input_shape:
        return 0, cfg.eval_classes  # a server without data: the devices know their labels
    ds, _ = load_with_split(cfg.dataset, cfg.seed)
    auto = HAPT_BASIC_CLASSES if ds.name == "hapt" else 0
    return int(ds.num_classes), cfg.eval_classes or auto


def _resolve_clients(cfg: RunConfig) -> tuple[RunConfig, int]:
    """The number of clients, and SecAgg+'s weight bound (max-weight 0 = auto)."""
    if cfg.node_data:
        # Devices bring their own files: the server never sees how much data each holds,
        # so the weight bound is a fixed cap (a device with more samples is weighted as if
        # it had max-weight; see client_app).
        if cfg.max_weight == 0:
            cfg = cfg.replace(max_weight=DEPLOYMENT_MAX_WEIGHT)
        return cfg, cfg.num_clients
    from common.client_data import client_indices

    parts = client_indices(cfg)
    if cfg.max_weight == 0:
        cfg = cfg.replace(max_weight=float(max(len(p) for p in parts)))
    return cfg, len(parts)


def input_shape(cfg: RunConfig) -> tuple[int, ...]:
    """One sample's shape: ``input-shape``, else the data set's. A deployment server that
    is given the shape and does not probe (``evaluate`` off) loads no data at all."""
    from common.client_data import load_with_split

    given = cfg.sample_shape()
    if given is not None and cfg.node_data and not cfg.evaluate:
        return given
    ds, _ = load_with_split(cfg.dataset, cfg.seed)  # DataError names the problem
    shape = tuple(int(d) for d in ds.input_shape)
    if given is not None and given != shape:
        raise ConfigError(
            f"input-shape {cfg.input_shape} does not match {cfg.dataset}'s samples "
            f"{'x'.join(map(str, shape))}",
            "input-shape",
        )
    return shape


def server_opt_config(cfg: RunConfig) -> ServerOptConfig:
    return ServerOptConfig(
        name=cfg.server_optimizer,
        lr=cfg.server_learning_rate,
        momentum=cfg.server_momentum,
        beta1=cfg.server_beta1,
        beta2=cfg.server_beta2,
        tau=cfg.server_tau,
        lr_final=cfg.server_learning_rate_final,
        rounds=cfg.num_server_rounds,
    )


def make_strategy(setup: RunSetup) -> DeltaFedAvg:
    """Delta FedAvg with the server optimizer, the sanity bound and central DP."""
    cfg = setup.cfg
    strategy = DeltaFedAvg(
        setup.init,
        training_config(cfg),
        fraction_fit=cfg.fraction_train,
        # Only the first round waits for every client (run_rounds); later rounds go on
        # with whoever is connected, as long as SecAgg+ can run (3) or FedAvg (2).
        min_available_clients=min_clients(cfg, setup.n_clients),
        server_opt=server_opt_config(cfg),
        max_update_ratio=cfg.max_update_ratio,
        dp_noise_multiplier=cfg.dp_noise_multiplier,
        dp_clipping_norm=cfg.dp_clipping_norm,
        dp_delta=cfg.dp_delta,
    )
    strategy.set_global(setup.start_arrays)
    if cfg.resume:  # the privacy the released rounds already spent
        strategy.restore_privacy_spent(
            [
                r["dp_sampling_rate"]
                for r in setup.out.rows
                if r["completed"] and r.get("dp_noise_std")
            ]
        )
    return strategy


def min_clients(cfg: RunConfig, n_clients: int) -> int:
    return min(n_clients, 3 if cfg.secure_aggregation else 2)


# The slowest SecAgg+ stage (masked vectors) took 506 s for 10,000 simulated clients on
# this project's 2-core machine: about 0.05 s a client.
SECAGG_STAGE_S_PER_CLIENT = 0.05


def secagg_timeout_warning(cfg: RunConfig, per_round: int) -> str | None:
    """A warning when every SecAgg+ stage may need longer than ``secagg-timeout``."""
    need = per_round * SECAGG_STAGE_S_PER_CLIENT
    if not cfg.secure_aggregation or need <= cfg.secagg_timeout:
        return None
    return (
        f"secagg-timeout ({cfg.secagg_timeout:g} s a stage) may be too short for "
        f"{per_round} clients per round: a stage waits for every client, and 10,000 "
        f"simulated clients took about {SECAGG_STAGE_S_PER_CLIENT:g} s each on 2 cores; "
        "clients still working at the timeout are dropped. Consider --secagg-timeout "
        f"{math.ceil(2 * need)}"
    )


def log_run_start(setup: RunSetup) -> None:
    cfg = setup.cfg
    if cfg.dp_clipping:
        log.info(
            "central DP: clients clip their delta to L2 norm %g and count equally; %s",
            cfg.dp_clipping_norm,
            f"noise multiplier {cfg.dp_noise_multiplier:g} on the aggregate, epsilon at "
            f"delta {cfg.dp_delta:g}"
            if cfg.dp_noise
            else "no noise (dp-noise-multiplier 0): no privacy guarantee",
        )
    secagg = "SecAgg+" if cfg.secure_aggregation else "plain FedAvg (no secure aggregation)"
    shares = cfg.secagg_shares(setup.per_round) if cfg.secure_aggregation else None
    log.info(
        "run: %s, %s on %d clients (%d per round), %d rounds, %s%s; outputs in %s",
        cfg.dataset,
        cfg.method,
        setup.n_clients,
        setup.per_round,
        cfg.num_server_rounds,
        secagg,
        f" (num-shares {shares[0]}, threshold {shares[1]}, "
        f"modulus 2^{cfg.secagg_modulus(setup.per_round).bit_length() - 1})"
        if shares
        else "",
        setup.out.dir,
    )
    warning = secagg_timeout_warning(cfg, setup.per_round)
    if warning:
        log.warning(warning)
