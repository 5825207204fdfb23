"""Real Flower simulations (Ray) through the real CLI: SecAgg+ aggregates equal FedAvg
of the same client deltas, and an aborted round is reported and fails the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.client_data import client_inputs
from common.config import RunConfig
from common.local_round import initial_global_arrays, run_local_round
from common.serialize import read_encoder_file

ARGS = [
    "--dataset",
    "digits",
    "--clients",
    "3",
    "--rounds",
    "2",
    "--local-epochs",
    "1",
    "--batch-size",
    "64",
    "--seed",
    "3",
    "--no-evaluate",
]


def _simulate(
    out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "common.cli", "simulate", *ARGS, "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=400,
        env=full_env,
    )


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _encoder_state(path: Path) -> dict[str, torch.Tensor]:
    return read_encoder_file(path)["state_dict"]


def _reference_rounds(cfg: RunConfig, rounds: int) -> list[dict[str, torch.Tensor]]:
    """Plain FedAvg of the clients' deltas, computed here with the same client code."""
    torch.set_num_threads(1)  # the simulated clients train with one thread each
    xs = [client_inputs(cfg, pid) for pid in range(3)]
    cfg = cfg.replace(max_weight=float(max(len(x) for x in xs)))
    shape = tuple(xs[0].shape[1:])
    glob = initial_global_arrays(cfg, shape)
    states: list[bytes | None] = [None, None, None]
    out = []
    from common.local_round import encoder_state_from_arrays

    for rnd in range(1, rounds + 1):
        results = []
        for pid, x in enumerate(xs):
            res = run_local_round(cfg, x, glob, states[pid], server_round=rnd, partition_id=pid)
            states[pid] = res.state
            results.append(res)
        n = np.array([r.num_examples for r in results], dtype=np.float64)
        glob = [
            (
                g.astype(np.float64) + sum(w * r.delta[i] for w, r in zip(n, results, strict=True)) / n.sum()
            ).astype(np.float32)
            for i, g in enumerate(glob)
        ]
        out.append(encoder_state_from_arrays(cfg, shape, glob)[0])
    return out


def test_secagg_aggregate_equals_fedavg_of_client_deltas(tmp_path: Path) -> None:
    out = tmp_path / "secagg"
    proc = _simulate(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(out)
    assert [r["round"] for r in rows] == [1, 2]
    assert all(r["completed"] and r["secure_aggregation"] for r in rows)
    assert all(r["clients_aggregated"] == 3 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_completed"] == 2 and summary["rounds_failed"] == 0

    cfg = RunConfig(
        dataset="digits",
        num_clients=3,
        num_server_rounds=2,
        local_epochs=1,
        batch_size=64,
        seed=3,
        evaluate=False,
    )
    reference = _reference_rounds(cfg, 2)
    for rnd, ref in enumerate(reference, start=1):
        got = _encoder_state(out / "checkpoints" / f"round-{rnd:04d}.pt")
        init = _encoder_state(out / "checkpoints" / "round-0000.pt")
        moved = max(float((got[k] - init[k]).abs().max()) for k in ref)
        assert moved > 1e-3, "training must actually change the encoder"
        err = max(float((got[k] - ref[k]).abs().max()) for k in ref)
        assert err < 1e-4, f"round {rnd}: SecAgg+ aggregate differs from FedAvg by {err}"
    final = _encoder_state(out / "encoder.pt")
    last = _encoder_state(out / "checkpoints" / "round-0002.pt")
    assert all(torch.equal(final[k], last[k]) for k in final)


def test_aborted_round_is_reported_and_fails_the_run(tmp_path: Path) -> None:
    out = tmp_path / "abort"
    # Two of three clients vanish at share-keys in round 2: too few shares to unmask.
    proc = _simulate(out, env={"FEDSSL_FAULTS": "share_keys@0,1#2"})
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "FAILED" in proc.stderr
    rows = _rows(out)
    assert rows[0]["completed"] is True
    assert rows[1]["completed"] is False and rows[1]["secure_aggregation"] is True
    assert "aborted" in rows[1]["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["rounds_failed"] == 1 and summary["failed_rounds"] == [2]
    # The failed round left the global encoder as round 1 made it.
    final = _encoder_state(out / "encoder.pt")
    r1 = _encoder_state(out / "checkpoints" / "round-0001.pt")
    assert all(torch.equal(final[k], r1[k]) for k in final)
    assert not (out / "checkpoints" / "round-0002.pt").exists()


@pytest.mark.parametrize(
    "bad",
    [
        ["--rounds", "0"],
        ["--num-shares", "3", "--reconstruction-threshold", "3"],
        ["--method", "nope"],
        ["--dataset", "nope"],
    ],
)
def test_bad_configuration_is_refused_before_any_round(tmp_path: Path, bad: list[str]) -> None:
    proc = _simulate(tmp_path / "bad", *bad)
    assert proc.returncode == 2
    assert "error" in proc.stderr
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()
