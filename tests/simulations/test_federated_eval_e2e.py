"""Federated evaluation in a real SecAgg+ simulation: every node gets each round's
encoder and evaluates it on its own data; the held-out clients only evaluate. Checked
against the same computation done here, centrally, on the same clients' data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_cli
from flwr.common.serde import ProtoRecordDict, recorddict_from_proto
from sklearn.datasets import load_digits

from client.federated_eval import EvalSettings, evaluate_on_device
from common.client_data import client_data, client_indices, held_out_clients
from common.config import RunConfig
from common.messages import EVAL_RESULT
from common.serialize import checkpoint_shared_arrays
from common.threads import set_torch_threads

USERS, ROUNDS = 10, 2  # 10 users: the protocol holds 2 out (20 %), 8 train


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, RunConfig]:
    tmp = tmp_path_factory.mktemp("fedeval")
    d = load_digits()
    data = tmp / "users.npz"
    np.savez(
        data,
        x=(d.images / 16.0).astype(np.float32)[:, None],
        y=d.target.astype(np.int64),
        client=np.arange(len(d.target)) % USERS,
    )
    out, rec = tmp / "run", tmp / "rec"
    args = ["--dataset", f"npz:{data}", "--rounds", str(ROUNDS), "--local-epochs", "1"]
    args += ["--seed", "1", "--out", str(out)]
    proc = run_cli("simulate", *args, env={"FEDSSL_RECORD_DIR": str(rec)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    cfg = RunConfig(dataset=f"npz:{data}", seed=1, local_epochs=1, num_server_rounds=ROUNDS)
    return out, rec, cfg


def _replies(rec: Path, pid: int, stage: str, rnd: int | None = None) -> list[dict]:
    folder = rec / "clients" / f"partition-{pid}"
    pattern = f"round-{rnd}-{stage}-*.pb" if rnd is not None else f"round-*-{stage}-*.pb"
    out = []
    for path in sorted(folder.glob(pattern)):
        content = recorddict_from_proto(ProtoRecordDict.FromString(path.read_bytes()))
        out.append(dict(content.config_records[EVAL_RESULT]) if stage == "evaluate" else {})
    return out


def test_held_out_clients_evaluate_but_never_train(run: tuple[Path, Path, RunConfig]) -> None:
    out, rec, cfg = run
    n_train, n_eval = len(client_indices(cfg)), len(held_out_clients(cfg))
    assert (n_train, n_eval) == (8, 2)
    for pid in range(n_train + n_eval):
        trained = [p for p in (rec / "clients" / f"partition-{pid}").glob("round-*-setup-*.pb")]
        evaluated = _replies(rec, pid, "evaluate")
        assert len(evaluated) == ROUNDS + 1  # the random-init encoder, then every round
        assert {e["role"] for e in evaluated} == {"evaluate" if pid >= n_train else "train"}
        if pid >= n_train:  # nothing of SecAgg+, no update, ever
            assert trained == [] and not list(
                (rec / "clients" / f"partition-{pid}").glob("plain-*")
            )
        else:
            assert len(trained) == ROUNDS
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["clients_sampled"] == n_train and r["clients_aggregated"] == n_train for r in rows)
    for row in rows:
        fe = row["federated_evaluation"]
        assert fe["devices"] == n_train + n_eval and fe["labeled_devices"] == n_train + n_eval
        assert fe["evaluate"]["devices"] == n_eval and fe["train"]["devices"] == n_train
        assert (
            fe["bytes_per_device"]
            == (out / "checkpoints" / f"round-{row['round']:04d}.pt").stat().st_size
        )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["federated_evaluation"]["round"] == ROUNDS
    assert summary["federated_evaluation_initial"]["round"] == 0
    assert (out / "federated_evaluation.png").is_file()


def test_device_figures_equal_the_central_computation(run: tuple[Path, Path, RunConfig]) -> None:
    out, rec, cfg = run
    arrays = checkpoint_shared_arrays(out / "checkpoints" / f"round-{ROUNDS:04d}.pt")
    settings = EvalSettings(
        labels_per_class=cfg.eval_labels_per_class, label_range=10, seed=cfg.seed
    )
    previous = set_torch_threads(1)  # as the simulated clients ran
    try:
        weighted, total = 0.0, 0
        for pid in range(len(client_indices(cfg)) + len(held_out_clients(cfg))):
            x, y = client_data(cfg, pid)
            central = evaluate_on_device(cfg, arrays, x, y, settings)
            (device,) = _replies(rec, pid, "evaluate", ROUNDS)
            for key, value in central.items():
                assert abs(float(device[key]) - float(value)) <= 1e-6, (
                    pid,
                    key,
                    device[key],
                    value,
                )
            weighted += float(central["accuracy"]) * int(central["accuracy-samples"])
            total += int(central["accuracy-samples"])
    finally:
        set_torch_threads(previous)
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert abs(row["federated_evaluation"]["accuracy"] - weighted / total) <= 1e-9


def test_the_server_probe_stands_beside_each_round(run: tuple[Path, Path, RunConfig]) -> None:
    """The per-round probe reads each round's checkpoint; the final probe uses the encoder
    held in memory. Round 0 and the last round must agree with it."""
    out, _, _ = run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    final = summary["linear_probe"]
    initial = summary["federated_evaluation_initial"]["server_linear_probe"]
    last = rows[-1]["federated_evaluation"]["server_linear_probe"]
    assert initial["accuracy"] == pytest.approx(final["random_init"]["accuracy"], abs=1e-9)
    assert last["accuracy"] == pytest.approx(final["federated"]["accuracy"], abs=1e-9)
    assert all(0 < r["federated_evaluation"]["server_linear_probe"]["accuracy"] <= 1 for r in rows)
