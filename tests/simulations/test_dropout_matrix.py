"""Dropouts at every SecAgg+ stage, in one real 6-client simulation (Ray), one case per
round. Each completed round must equal FedAvg over exactly the clients whose update the
protocol kept (within 1e-4); each aborted round must leave the global encoder unchanged
and the run must go on to the next round.

| round | fault (FEDSSL_FAULTS)                    | expected outcome                        |
|-------|------------------------------------------|-----------------------------------------|
| 1     | client 0 lost at setup                   | completes, FedAvg over the other 5      |
| 2     | client 1 lost at share-keys              | completes, FedAvg over the other 5      |
| 3     | client 2 lost at the masked-vector stage | completes, FedAvg over the other 5      |
| 4     | client 3 lost at unmasking               | completes, FedAvg over all 6 (its       |
|       |                                          | masked vector was already in the sum)   |
| 5     | clients 0–3 lost at share-keys           | aborted: 2 left, threshold is 4         |
| 6     | clients 0–3 lost at unmasking            | aborted: too few shares to unmask       |
| 7     | none                                     | completes, FedAvg over all 6            |
| 8     | client 4's update is not finite (NaN in  | completes, FedAvg over the other 5;     |
|       | its data)                                | client 4 sends nothing and says why     |
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_run import run_cli
from fedavg_replay import check_rounds_against_fedavg

from common.config import RunConfig

N = 6
FAULTS = ";".join(
    [
        "setup@0#1",
        "share_keys@1#2",
        "collect_masked_vectors@2#3",
        "unmask@3#4",
        "share_keys@0,1,2,3#5",
        "unmask@0,1,2,3#6",
        "nan@4#8",
    ]
)
# Per round: the clients that trained (reached the masked-vector stage), the clients
# whose update the aggregate must hold, or None when the round must abort.
TRAINED = {
    1: {1, 2, 3, 4, 5},
    2: {0, 2, 3, 4, 5},
    3: {0, 1, 3, 4, 5},
    4: set(range(N)),
    5: set(),
    6: set(range(N)),
    7: set(range(N)),
    8: {0, 1, 2, 3, 5},
}
AGGREGATED: dict[int, set[int] | None] = {
    1: {1, 2, 3, 4, 5},
    2: {0, 2, 3, 4, 5},
    3: {0, 1, 3, 4, 5},
    4: set(range(N)),
    5: None,
    6: None,
    7: set(range(N)),
    8: {0, 1, 2, 3, 5},
}
ROUNDS = len(TRAINED)


def _config() -> RunConfig:
    return RunConfig(
        dataset="digits",
        num_clients=N,
        num_server_rounds=ROUNDS,
        local_epochs=1,
        batch_size=64,
        seed=5,
        evaluate=False,
        max_failed_rounds=2,
    )


def _simulate(out: Path) -> subprocess.CompletedProcess:
    cfg = _config()
    args = [
        *("--dataset", cfg.dataset, "--clients", str(N), "--rounds", str(ROUNDS)),
        *("--local-epochs", "1", "--batch-size", "64", "--seed", str(cfg.seed)),
        *("--max-failed-rounds", "2", "--no-evaluate", "--out", str(out)),
    ]
    return run_cli("simulate", *args, env={"FEDSSL_FAULTS": FAULTS})


def test_dropout_at_every_secagg_stage(tmp_path: Path) -> None:
    out = tmp_path / "dropouts"
    proc = _simulate(out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = {
        r["round"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
    }
    assert sorted(rows) == list(range(1, ROUNDS + 1))
    for rnd, kept in AGGREGATED.items():
        row = rows[rnd]
        assert row["secure_aggregation"] is True
        assert row["clients_sampled"] == N, row
        if kept is None:
            assert row["completed"] is False, row
            assert "aborted" in row["reason"], row
            assert not (out / "checkpoints" / f"round-{rnd:04d}.pt").exists()
        else:
            assert row["completed"] is True, row
            assert row["clients_aggregated"] == len(kept), row
            assert row["clients_failed"] == N - len(kept), row
    assert any("non-finite" in f for f in rows[8]["failures"]), rows[8]
    check_rounds_against_fedavg(out, _config(), TRAINED, AGGREGATED)
