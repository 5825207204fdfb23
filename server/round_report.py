"""After each round: the checkpoint of the new global encoder, the round's row in
``metrics.jsonl`` and its line in the log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.config import RunConfig
from common.local_round import encoder_from_arrays
from common.serialize import save_encoder
from server.federated_eval import evaluation_line
from server.round_loop import RoundHook
from server.round_outcome import RoundOutcome
from server.run_setup import RunSetup
from server.strategy import DeltaFedAvg

log = logging.getLogger("fedssl.server")


def save_global(
    cfg: RunConfig, shape: tuple[int, ...], path: Path, arrays: list[np.ndarray], server_round: int
) -> None:
    """The global encoder with its architecture, and the whole shared state (for resume)."""
    enc, arch, hparams = encoder_from_arrays(cfg, shape, arrays)
    meta = {"round": server_round, "method": cfg.method, "dataset": cfg.dataset}
    meta["input_shape"] = list(shape)
    shared = {f"{i:04d}": torch.from_numpy(a) for i, a in enumerate(arrays)}
    save_encoder(path, enc, arch, hparams, meta, extra_state=shared)


# evaluate(round, checkpoint) -> the devices' aggregated figures
Evaluator = Callable[[int, Path], dict[str, Any]]


def round_reporter(
    setup: RunSetup, strategy: DeltaFedAvg, evaluate: Evaluator | None = None
) -> RoundHook:
    """``on_round_end(outcome, seconds)``: checkpoint, evaluate on the devices (every
    ``evaluate-every`` completed rounds, and after the last), record and log one round."""
    cfg, out = setup.cfg, setup.out
    upload = sum(a.size for a in setup.init) * (8 if cfg.secure_aggregation else 4)
    download = sum(a.size for a in setup.init) * 4  # the global arrays, float32

    def on_round_end(outcome: RoundOutcome, seconds: float) -> None:
        path = out.checkpoint_path(outcome.round)
        if outcome.completed:
            save_global(cfg, setup.shape, path, strategy.global_arrays, outcome.round)
        extra: dict[str, Any] = {}
        if evaluate is not None and _evaluated(cfg, outcome):
            if not outcome.completed:  # the last round failed: the encoder it leaves
                path = out.dir / "encoder.pt"
                save_global(cfg, setup.shape, path, strategy.global_arrays, outcome.round)
            extra["federated_evaluation"] = evaluate(outcome.round, path)
        row = out.append_round(
            outcome,
            secure_aggregation=cfg.secure_aggregation,
            seconds=round(seconds, 3),
            upload_bytes_per_client=upload,
            download_bytes_per_client=download,
            **extra,
        )
        if outcome.clipped_values:
            log.warning(
                "round %d: SecAgg+ clipped %d update values at +/-%g (Flower clips silently); "
                "raise clipping-range if this persists",
                outcome.round,
                outcome.clipped_values,
                cfg.clipping_range,
            )
        log.info("%s", round_line(cfg, outcome, row, seconds))
        if "federated_evaluation" in extra:
            log.info("%s", evaluation_line(extra["federated_evaluation"]))

    return on_round_end


def _evaluated(cfg: RunConfig, outcome: RoundOutcome) -> bool:
    every = cfg.evaluate_every
    last = outcome.round == cfg.num_server_rounds
    return bool(every) and (last or (outcome.completed and outcome.round % every == 0))


def round_line(cfg: RunConfig, outcome: RoundOutcome, row: dict, seconds: float) -> str:  # type: ignore[type-arg]
    status = "ok " if row["completed"] else "FAILED"
    loss = f"loss {row['train_loss']:.4f}" if row["train_loss"] is not None else row["reason"]
    dp = ""
    if outcome.dp_clipped is not None:
        dp = f" | DP clipped {outcome.dp_clipped}/{outcome.clients_aggregated}"
        if outcome.dp_epsilon is not None:
            dp += f", epsilon {outcome.dp_epsilon:.3g} (delta {cfg.dp_delta:g})"
    return (
        f"[round {outcome.round}/{cfg.num_server_rounds}] {status} {loss} | "
        f"{outcome.clients_aggregated}/{outcome.clients_sampled} clients | {seconds:.1f} s{dp}"
    )
