"""A whole federated SSL run on the server: set-up, rounds, final encoder and summary."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from flwr.server import LegacyContext, ServerConfig
from flwr.serverapp import Grid

from common.config import ConfigError, RunConfig
from common.errors import EXIT_FAILED_ROUNDS, FedsslError
from common.local_round import encoder_from_arrays
from common.messages import training_config
from common.plots import plot_federated_evaluation, plot_rounds
from server.evaluation import probe_checkpoint, probe_encoders
from server.fast_grid import with_fast_polling
from server.federated_eval import evaluate_on_devices, evaluation_line
from server.node_roles import NodeRoles
from server.outputs import RunOutputs
from server.plain_workflow import PlainFitWorkflow
from server.recording_grid import with_recording
from server.round_loop import Workflow, run_rounds
from server.round_report import Evaluator, round_reporter, save_global
from server.run_setup import RunSetup, log_run_start, make_strategy, min_clients, prepare_run
from server.secagg_workflow import DropoutTolerantSecAggPlus
from server.strategy import DeltaFedAvg

log = logging.getLogger("fedssl.server")


class RunFailedError(FedsslError, RuntimeError):
    """More rounds failed than ``max-failed-rounds`` allows."""

    exit_code = EXIT_FAILED_ROUNDS


def default_out_dir(cfg: RunConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.dataset.split(':')[0]}-{cfg.method}-{stamp}"


def make_fit_workflow(cfg: RunConfig, clients_per_round: int) -> Workflow:
    if not cfg.secure_aggregation:
        return PlainFitWorkflow(timeout=cfg.secagg_timeout)
    shares, threshold = cfg.secagg_shares(clients_per_round)
    return DropoutTolerantSecAggPlus(
        num_shares=shares,
        reconstruction_threshold=threshold,
        max_weight=cfg.max_weight,
        clipping_range=cfg.clipping_range,
        quantization_range=cfg.quantization_range,
        modulus_range=cfg.secagg_modulus(clients_per_round),
        timeout=cfg.secagg_timeout,
    )


def run_federated(grid: Grid, context: Any, cfg: RunConfig) -> dict[str, Any]:
    """Run every round of ``cfg`` and write the output folder; return the summary."""
    t_start = time.perf_counter()
    setup = prepare_run(cfg)
    cfg = setup.cfg
    strategy = make_strategy(setup)
    if not cfg.resume:
        save_global(cfg, setup.shape, setup.out.checkpoint_path(0), setup.init, 0)
    log_run_start(setup)
    legacy = LegacyContext(
        context, config=ServerConfig(num_rounds=cfg.num_server_rounds), strategy=strategy
    )
    grid = with_recording(with_fast_polling(grid))
    # A deployment's devices are not trusted to name their place in the sampling order.
    roles = strategy.roles = NodeRoles(training_config(cfg), trust_partitions=not cfg.node_data)
    evaluate = _evaluator(grid, setup, roles) if cfg.evaluate_every else None
    initial: dict[str, Any] = {}

    def before_round_1() -> None:
        if cfg.fraction_train < 1:  # the seeded draw of trainers orders nodes by partition
            # as long as a round would wait: a node's first message pays its start-up
            roles.ask(grid, grid.get_node_ids(), timeout=cfg.secagg_timeout)
        if evaluate is not None and not cfg.resume:  # figures of the encoder they start from
            initial.update(evaluate(0, setup.out.checkpoint_path(0)))

    run_rounds(
        grid,
        legacy,
        make_fit_workflow(cfg, setup.per_round),
        strategy,
        first_round=setup.first_round,
        last_round=cfg.num_server_rounds,
        on_round_end=round_reporter(setup, strategy, evaluate),
        wait_for_clients=setup.nodes,
        secure=cfg.secure_aggregation,
        round_min_clients=min_clients(cfg, setup.n_clients),
        round_wait_s=cfg.secagg_timeout,
        on_start=before_round_1,
    )
    done = [r["round"] for r in setup.out.rows if r["completed"]]
    final = setup.out.dir / "encoder.pt"
    save_global(cfg, setup.shape, final, strategy.global_arrays, done[-1] if done else 0)
    seconds = time.perf_counter() - t_start
    return finish(cfg, setup.out, setup.init, strategy, setup.shape, seconds, initial or None)


def _evaluator(grid: Grid, setup: RunSetup, roles: NodeRoles) -> Evaluator:
    def evaluate(server_round: int, checkpoint: Path) -> dict[str, Any]:
        figures = evaluate_on_devices(
            grid, setup.cfg, server_round, checkpoint, roles, setup.label_range, setup.eval_classes
        )
        if setup.cfg.evaluate:  # the server reads labeled data: its probe, side by side
            figures["server_linear_probe"] = probe_checkpoint(setup.cfg, checkpoint)
        if server_round == 0:
            log.info("%s", evaluation_line(figures).replace("[round 0]", "[random init]"))
        return figures

    return evaluate


def finish(
    cfg: RunConfig,
    out: RunOutputs,
    init: list[np.ndarray],
    strategy: DeltaFedAvg,
    shape: tuple[int, ...],
    seconds: float,
    initial_evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Probe, summarise, plot; raise RunFailedError when too many rounds failed."""
    rows = out.rows
    failed = [r["round"] for r in rows if not r["completed"]]
    ok = len(failed) <= cfg.max_failed_rounds and len(failed) < len(rows)
    summary: dict[str, Any] = {
        "status": "completed" if ok else "failed",
        "rounds_completed": len(rows) - len(failed),
        "rounds_failed": len(failed),
        "failed_rounds": failed,
        "max_failed_rounds": cfg.max_failed_rounds,
        "secure_aggregation": cfg.secure_aggregation,
        "dataset": cfg.dataset,
        "method": cfg.method,
        "seconds": round(seconds, 2),
        "encoder": str(out.dir / "encoder.pt"),
    }
    if cfg.dp_clipping:
        noised = [r for r in rows if r["completed"] and r.get("dp_noise_std")]
        summary["differential_privacy"] = {
            "noise_multiplier": cfg.dp_noise_multiplier,
            "clipping_norm": cfg.dp_clipping_norm,
            "delta": cfg.dp_delta,
            # Cumulative over the rounds that released a noised aggregate; None: no noise.
            "epsilon": strategy.accountant.epsilon if strategy.accountant is not None else None,
            "rounds_noised": len(noised),
            "accountant": "RDP, dp-accounting, Poisson-sampled Gaussian per round",
        }
    if cfg.evaluate:
        encoders = {
            name: encoder_from_arrays(cfg, shape, arrays)[0]
            for name, arrays in (("federated", strategy.global_arrays), ("random_init", init))
        }
        log.info("linear probe of the federated and the random-init encoder ...")
        summary["linear_probe"] = probe_encoders(cfg, encoders)
    evaluated = [r["federated_evaluation"] for r in rows if r.get("federated_evaluation")]
    if evaluated:
        summary["federated_evaluation"] = evaluated[-1]
    if initial_evaluation:
        summary["federated_evaluation_initial"] = initial_evaluation
    if rows:
        plot_rounds(rows, out.dir / "rounds.png", f"{cfg.dataset} / {cfg.method}")
        plot_federated_evaluation(
            rows, initial_evaluation, out.dir / "federated_evaluation.png", cfg.dataset
        )
    out.write_json("summary.json", summary)
    if summary["status"] == "failed":
        raise RunFailedError(
            f"{len(failed)} of {len(rows)} rounds failed (rounds {failed}); "
            f"max-failed-rounds is {cfg.max_failed_rounds}, and a run needs at least one "
            f"completed round. See {out.dir / 'metrics.jsonl'}"
        )
    return summary


__all__ = ["ConfigError", "RunFailedError", "run_federated"]
