"""A whole federated SSL run on the server: set-up, rounds, final encoder and summary."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.server import LegacyContext, ServerConfig
from flwr.serverapp import Grid

from common.client_data import client_indices, load_with_split
from common.config import ConfigError, RunConfig
from common.local_round import encoder_from_arrays, initial_global_arrays
from common.plots import plot_rounds
from common.serialize import save_encoder
from server.evaluation import probe_encoders
from server.fast_grid import with_fast_polling
from server.outputs import RunOutputs
from server.plain_workflow import PlainFitWorkflow
from server.recording_grid import with_recording
from server.resume import check_same_run, find_resume_point
from server.round_loop import Workflow, run_rounds
from server.round_outcome import RoundOutcome
from server.secagg_workflow import DropoutTolerantSecAggPlus
from server.strategy import DeltaFedAvg

log = logging.getLogger("fedssl.server")


# SecAgg+ weight bound when devices bring their own data (node-data): a device with
# more samples than this is weighted as if it had this many.
DEPLOYMENT_MAX_WEIGHT = 4096.0


class RunFailedError(RuntimeError):
    """More rounds failed than ``max-failed-rounds`` allows."""


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
        modulus_range=cfg.modulus_range,
        timeout=cfg.secagg_timeout,
    )


def run_federated(grid: Grid, context: Any, cfg: RunConfig) -> dict[str, Any]:
    """Run every round of ``cfg`` and write the output folder; return the summary."""
    t_start = time.perf_counter()
    cfg.check_names()
    ds, _ = load_with_split(cfg.dataset, cfg.seed)
    if cfg.node_data:
        # Devices bring their own files: the server never sees how much data each holds,
        # so SecAgg+'s weight bound is a fixed cap (a device with more samples is
        # weighted as if it had max-weight; see client_app).
        n_clients = cfg.num_clients
        if cfg.max_weight == 0:
            cfg = cfg.replace(max_weight=DEPLOYMENT_MAX_WEIGHT)
    else:
        parts = client_indices(cfg)
        n_clients = len(parts)
        if cfg.max_weight == 0:
            cfg = cfg.replace(max_weight=float(max(len(p) for p in parts)))
    per_round = cfg.clients_per_round(n_clients)
    cfg.validate_for_clients(per_round)
    out = RunOutputs(cfg.out_dir or default_out_dir(cfg), resume=cfg.resume)
    cfg = cfg.replace(out_dir=str(out.dir))
    shape = tuple(ds.input_shape)
    init = initial_global_arrays(cfg, shape)
    first_round, start_arrays = 1, init
    if cfg.resume:
        check_same_run(out.read_json("config.json"), cfg)
        point = find_resume_point(out)
        first_round, start_arrays = point.next_round, point.arrays
        log.info(
            "resuming %s at round %d from the checkpoint of round %d",
            out.dir,
            first_round,
            point.checkpoint_round,
        )
        if cfg.server_momentum > 0:
            log.warning("resume: server momentum restarts from zero")
    out.write_json(
        "config.json", {**cfg.replace(resume=False).to_flat(), "resolved-clients": n_clients}
    )

    min_clients = min(n_clients, 3 if cfg.secure_aggregation else 2)
    strategy = DeltaFedAvg(
        init,
        cfg.to_flat(),
        fraction_fit=cfg.fraction_train,
        # Only the first round waits for every client (run_rounds); later rounds go on
        # with whoever is connected, as long as SecAgg+ can run (3) or FedAvg (2).
        min_available_clients=min_clients,
        server_learning_rate=cfg.server_learning_rate,
        server_momentum=cfg.server_momentum,
        max_update_ratio=cfg.max_update_ratio,
        dp_noise_multiplier=cfg.dp_noise_multiplier,
        dp_clipping_norm=cfg.dp_clipping_norm,
        dp_delta=cfg.dp_delta,
    )
    strategy.set_global(start_arrays)
    if cfg.resume:  # the privacy the released rounds already spent
        strategy.restore_privacy_spent(
            [r["dp_sampling_rate"] for r in out.rows if r["completed"] and r.get("dp_noise_std")]
        )
    if cfg.dp_clipping:
        log.info(
            "central DP: clients clip their delta to L2 norm %g and count equally; %s",
            cfg.dp_clipping_norm,
            f"noise multiplier {cfg.dp_noise_multiplier:g} on the aggregate, epsilon at "
            f"delta {cfg.dp_delta:g}"
            if cfg.dp_noise
            else "no noise (dp-noise-multiplier 0): no privacy guarantee",
        )

    def save(path: Path, arrays: list[np.ndarray], server_round: int) -> None:
        enc, arch, hparams = encoder_from_arrays(cfg, shape, arrays)
        meta = {
            "round": server_round,
            "method": cfg.method,
            "dataset": cfg.dataset,
            "input_shape": list(shape),
        }
        shared = {f"{i:04d}": torch.from_numpy(a) for i, a in enumerate(arrays)}
        save_encoder(path, enc, arch, hparams, meta, extra_state=shared)

    if not cfg.resume:
        save(out.checkpoint_path(0), init, 0)
    secagg = "SecAgg+" if cfg.secure_aggregation else "plain FedAvg (no secure aggregation)"
    shares = cfg.secagg_shares(per_round) if cfg.secure_aggregation else None
    log.info(
        "run: %s, %s on %d clients (%d per round), %d rounds, %s%s; outputs in %s",
        cfg.dataset,
        cfg.method,
        n_clients,
        per_round,
        cfg.num_server_rounds,
        secagg,
        f" (num-shares {shares[0]}, threshold {shares[1]})" if shares else "",
        out.dir,
    )
    upload = sum(a.size for a in init) * (8 if cfg.secure_aggregation else 4)

    def on_round_end(outcome: RoundOutcome, seconds: float) -> None:
        if outcome.completed:
            save(out.checkpoint_path(outcome.round), strategy.global_arrays, outcome.round)
        row = out.append_round(
            outcome,
            secure_aggregation=cfg.secure_aggregation,
            seconds=round(seconds, 3),
            upload_bytes_per_client=upload,
        )
        status = "ok " if row["completed"] else "FAILED"
        if outcome.clipped_values:
            log.warning(
                "round %d: SecAgg+ clipped %d update values at +/-%g (Flower clips silently); "
                "raise clipping-range if this persists",
                outcome.round,
                outcome.clipped_values,
                cfg.clipping_range,
            )
        loss = f"loss {row['train_loss']:.4f}" if row["train_loss"] is not None else row["reason"]
        dp = ""
        if outcome.dp_clipped is not None:
            dp = f" | DP clipped {outcome.dp_clipped}/{outcome.clients_aggregated}"
            if outcome.dp_epsilon is not None:
                dp += f", epsilon {outcome.dp_epsilon:.3g} (delta {cfg.dp_delta:g})"
        log.info(
            "[round %d/%d] %s %s | %d/%d clients | %.1f s%s",
            outcome.round,
            cfg.num_server_rounds,
            status,
            loss,
            outcome.clients_aggregated,
            outcome.clients_sampled,
            seconds,
            dp,
        )

    legacy = LegacyContext(
        context, config=ServerConfig(num_rounds=cfg.num_server_rounds), strategy=strategy
    )
    run_rounds(
        with_recording(with_fast_polling(grid)),
        legacy,
        make_fit_workflow(cfg, per_round),
        strategy,
        first_round=first_round,
        last_round=cfg.num_server_rounds,
        on_round_end=on_round_end,
        wait_for_clients=n_clients,
        secure=cfg.secure_aggregation,
        round_min_clients=min_clients,
        round_wait_s=cfg.secagg_timeout,
    )
    done = [r["round"] for r in out.rows if r["completed"]]
    save(out.dir / "encoder.pt", strategy.global_arrays, done[-1] if done else 0)
    return finish(cfg, out, init, strategy, shape, time.perf_counter() - t_start)


def finish(
    cfg: RunConfig,
    out: RunOutputs,
    init: list[np.ndarray],
    strategy: DeltaFedAvg,
    shape: tuple[int, ...],
    seconds: float,
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
    if rows:
        plot_rounds(rows, out.dir / "rounds.png", f"{cfg.dataset} / {cfg.method}")
    out.write_json("summary.json", summary)
    if summary["status"] == "failed":
        raise RunFailedError(
            f"{len(failed)} of {len(rows)} rounds failed (rounds {failed}); "
            f"max-failed-rounds is {cfg.max_failed_rounds}, and a run needs at least one "
            f"completed round. See {out.dir / 'metrics.jsonl'}"
        )
    return summary


__all__ = ["ConfigError", "RunFailedError", "run_federated"]
