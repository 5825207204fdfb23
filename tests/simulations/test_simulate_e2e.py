"""Real Flower simulations (Ray) through the real CLI: SecAgg+ aggregates equal FedAvg
of the same client deltas, and an aborted round is reported and fails the run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from cli_run import run_cli, run_main
from fedavg_replay import check_rounds_against_fedavg

from common.config import RunConfig
from common.serialize import checkpoint_shared_arrays, read_encoder_file

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
    return run_cli("simulate", *ARGS, "--out", str(out), *extra, env=env, timeout=400)


def _run_config(secure: bool) -> RunConfig:
    """The RunConfig that ARGS produce."""
    return RunConfig(
        dataset="digits",
        num_clients=3,
        num_server_rounds=2,
        local_epochs=1,
        batch_size=64,
        seed=3,
        evaluate=False,
        secure_aggregation=secure,
    )


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _encoder_state(path: Path) -> dict[str, torch.Tensor]:
    return read_encoder_file(path)["state_dict"]


def _check_against_fedavg(out: Path, cfg: RunConfig, rounds: int) -> None:
    """Every client trained and was aggregated in every round."""
    everyone = {rnd: {0, 1, 2} for rnd in range(1, rounds + 1)}
    check_rounds_against_fedavg(out, cfg, everyone, dict(everyone))


def test_secagg_aggregate_equals_fedavg_of_client_deltas(tmp_path: Path) -> None:
    # Large cohorts get a modulus above 2^32 (auto); Flower documents 2^32 as its limit,
    # but masks and sums are int64 throughout. Masks drawn over 2^40 only cancel if every
    # step of client and server keeps all 40 bits. (The dropout matrix checks the same
    # sums at the default modulus.)
    out = tmp_path / "secagg"
    proc = _simulate(out, "--set", f"modulus-range={2**40}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "modulus 2^40" in proc.stderr
    rows = _rows(out)
    assert [r["round"] for r in rows] == [1, 2]
    assert all(r["completed"] and r["secure_aggregation"] for r in rows)
    assert all(r["clients_aggregated"] == 3 for r in rows)
    n_params = sum(a.size for a in checkpoint_shared_arrays(out / "checkpoints" / "round-0000.pt"))
    assert all(r["upload_bytes_per_client"] == 8 * n_params for r in rows)  # int64 masked vectors
    assert all(r["download_bytes_per_client"] == 4 * n_params for r in rows)  # float32 global
    # Each SecAgg+ stage is timed (Flower's four stage methods, by name), within the round
    stages = ["setup", "share_keys", "collect_masked_vectors", "unmask"]
    for r in rows:
        assert list(r["secagg_seconds"]) == stages and all(
            v > 0 for v in r["secagg_seconds"].values()
        )
        assert sum(r["secagg_seconds"].values()) <= r["seconds"] + 0.005  # each rounded to ms
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_completed"] == 2 and summary["rounds_failed"] == 0

    _check_against_fedavg(out, _run_config(secure=True), rounds=2)
    final = _encoder_state(out / "encoder.pt")
    last = _encoder_state(out / "checkpoints" / "round-0002.pt")
    assert all(torch.equal(final[k], last[k]) for k in final)


def test_plain_fedavg_run_for_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "plain"
    proc = _simulate(out, "--no-secure-aggregation")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _rows(out)
    assert all(r["completed"] and not r["secure_aggregation"] for r in rows)
    assert all("secagg_seconds" not in r for r in rows)
    n_params = sum(a.size for a in checkpoint_shared_arrays(out / "checkpoints" / "round-0000.pt"))
    assert all(r["upload_bytes_per_client"] == 4 * n_params for r in rows)  # float32, unmasked
    _check_against_fedavg(out, _run_config(secure=False), rounds=2)
    # Reusing a folder that holds a run is refused before anything starts.
    argv = ["simulate", *ARGS, "--out", str(out), "--no-secure-aggregation"]
    code, err = run_main(argv, capsys, monkeypatch)
    assert code == 2 and "already holds a run" in err, err


def test_aborted_round_is_reported_and_fails_the_run(tmp_path: Path) -> None:
    out = tmp_path / "abort"
    # Two of three clients vanish at share-keys in round 2: too few shares to unmask.
    # A tiny clipping range also makes SecAgg+ clip: that must be counted and reported.
    proc = _simulate(
        out, "--set", "clipping-range=0.002", env={"FEDSSL_FAULTS": "share_keys@0,1#2"}
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "FAILED" in proc.stderr
    rows = _rows(out)
    assert rows[0]["completed"] is True
    assert rows[0]["clipped_values"] > 0 and "SecAgg+ clipped" in proc.stderr
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
def test_bad_configuration_is_refused_before_any_round(
    tmp_path: Path,
    bad: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["simulate", *ARGS, "--out", str(tmp_path / "bad"), *bad]
    code, err = run_main(argv, capsys, monkeypatch)
    assert code == 2 and "error" in err, err
    assert not (tmp_path / "bad").exists()
