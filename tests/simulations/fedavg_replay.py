"""Replay a run's clients here and compare each completed round with FedAvg.

FedAvg here is the example-weighted mean delta times the run's server step for the
round (the default schedule runs from 2 to 1; plain FedAvg is step 1). Every client's delta is recomputed from the global weights the round actually started
from (its checkpoint), with the client's own state carried between rounds, so the
comparison holds for SecAgg+, plain FedAvg and rounds that lost clients alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common.client_data import client_inputs
from common.config import RunConfig
from common.local_round import LocalRoundResult, run_local_round
from common.serialize import checkpoint_shared_arrays
from common.server_opt import make_server_optimizer
from server.run_setup import server_opt_config

TOLERANCE = 1e-4


def check_rounds_against_fedavg(
    out: Path,
    cfg: RunConfig,
    trained: dict[int, set[int]],
    kept: dict[int, set[int] | None],
    *,
    state_restarts_at: int | None = None,
) -> None:
    """Per round (in order): ``trained`` are the clients that trained, ``kept`` the ones
    the aggregate must hold (None: the round aborted and left no checkpoint). From round
    ``state_restarts_at`` on, the clients start again without their local state (a
    resumed simulation's clients are new processes)."""
    torch.set_num_threads(1)  # the simulated clients train with one thread each
    n_clients = 1 + max(max(s, default=0) for s in trained.values())
    xs = [client_inputs(cfg, pid) for pid in range(n_clients)]
    cfg = cfg.replace(max_weight=float(max(len(x) for x in xs)))
    states: list[bytes | None] = [None] * n_clients
    start = checkpoint_shared_arrays(out / "checkpoints" / "round-0000.pt")
    for rnd in sorted(trained):
        if rnd == state_restarts_at:
            states = [None] * n_clients
        results: dict[int, LocalRoundResult] = {}
        for pid in sorted(trained[rnd]):
            res = run_local_round(
                cfg, xs[pid], start, states[pid], server_round=rnd, partition_id=pid
            )
            states[pid] = res.state
            results[pid] = res
        held = kept[rnd]
        if held is None:
            continue
        got = checkpoint_shared_arrays(out / "checkpoints" / f"round-{rnd:04d}.pt")
        moved = max(float(np.abs(a - b).max()) for a, b in zip(got, start, strict=True))
        assert moved > 1e-3, f"round {rnd}: training did not change the global weights"
        step = server_step(cfg, rnd)
        err = _max_error(got, start, results, held, step)
        assert err < TOLERANCE, f"round {rnd}: differs from FedAvg over {held} by {err}"
        # Leaving one kept client out would fail the same tolerance: the check can fail.
        assert _max_error(got, start, results, held - {min(held)}, step) > TOLERANCE
        start = got


def server_step(cfg: RunConfig, server_round: int) -> float:
    """The run's server step in ``server_round`` (FedAvg without momentum only)."""
    server = make_server_optimizer(server_opt_config(cfg), []).cfg
    assert server.name == "fedavg" and server.momentum == 0
    return server.round_lr(server_round)


def _max_error(
    got: list[np.ndarray],
    start: list[np.ndarray],
    results: dict[int, LocalRoundResult],
    clients: set[int],
    step: float,
) -> float:
    n = {pid: float(results[pid].num_examples) for pid in clients}
    total = sum(n.values())
    worst = 0.0
    for i, g in enumerate(start):
        mean = sum(n[p] * results[p].delta[i].astype(np.float64) for p in clients) / total
        worst = max(worst, float(np.abs(got[i] - (g + step * mean)).max()))
    return worst
