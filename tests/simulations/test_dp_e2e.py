"""Central DP with SecAgg+ in a real Flower simulation through the real CLI: every
client clips, the server noises the aggregate with std sigma * C / n, and epsilon is
accounted per round, in metrics.jsonl and summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import dp_accounting
import numpy as np
import pytest
from cli_run import run_cli
from dp_accounting.rdp import RdpAccountant
from fedavg_replay import server_step

from common.config import RunConfig
from common.serialize import checkpoint_shared_arrays

SIGMA, CLIP = 2.0, 0.01  # a clipping norm far below any real delta: every client clips


def test_dp_with_secagg_clips_noises_and_accounts_every_round(tmp_path: Path) -> None:
    out = tmp_path / "dp"
    args = ["--dataset", "digits", "--clients", "3", "--rounds", "2", "--local-epochs", "1"]
    args += ["--seed", "3", "--no-evaluate", "--out", str(out)]
    args += ["--dp-noise-multiplier", str(SIGMA), "--dp-clipping-norm", str(CLIP)]
    proc = run_cli("simulate", *args, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    assert all(r["completed"] and r["secure_aggregation"] for r in rows)
    assert [r["dp_clipped"] for r in rows] == [3, 3]  # reported by each client
    assert all(r["clipped_values"] == 0 for r in rows)  # SecAgg+ itself clipped nothing
    std = SIGMA * CLIP / 3
    assert all(r["dp_noise_std"] == pytest.approx(std) for r in rows)
    assert all(r["dp_sampling_rate"] == 1.0 for r in rows)

    eps = [r["dp_epsilon"] for r in rows]
    for rounds, got in enumerate(eps, start=1):
        acc = RdpAccountant()
        event = dp_accounting.PoissonSampledDpEvent(1.0, dp_accounting.GaussianDpEvent(SIGMA))
        acc.compose(event, rounds)
        assert got == pytest.approx(acc.get_epsilon(1e-5), rel=1e-9)
    assert eps[0] < eps[1]
    dp = json.loads((out / "summary.json").read_text())["differential_privacy"]
    assert dp["epsilon"] == pytest.approx(eps[-1]) and dp["rounds_noised"] == 2
    assert "epsilon" in proc.stdout and "central DP" in proc.stdout

    # The global step of each round is the server step times the clipped mean (L2 norm
    # <= C) plus the noise: with C this small it is almost all noise, of per-coordinate
    # std sigma C / 3 times the server step (the default falls from 2 to 1 over the run).
    cfg = RunConfig(dataset="digits", num_clients=3, num_server_rounds=2)
    for rnd in (1, 2):
        before = checkpoint_shared_arrays(out / "checkpoints" / f"round-{rnd - 1:04d}.pt")
        after = checkpoint_shared_arrays(out / "checkpoints" / f"round-{rnd:04d}.pt")
        step = np.concatenate(
            [(a.astype(np.float64) - b).ravel() for a, b in zip(after, before, strict=True)]
        )
        assert step.size > 5000
        lr = server_step(cfg, rnd)
        assert step.std() == pytest.approx(lr * std, rel=0.1), f"round {rnd}"
        # Without noise the step could not exceed the clipped mean's norm C.
        assert np.linalg.norm(step) > 10 * CLIP
