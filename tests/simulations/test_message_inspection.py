"""What leaves a device, and what the server holds, under SecAgg+ (real 4-client
simulation on Ray, recorded with FEDSSL_RECORD_DIR).

- Every message a client sends is read back from its wire bytes: only SecAgg+ key
  material, encrypted shares, masked integer vectors and declared scalar metrics; no
  array in clear, none of the client's raw samples, none of its labels.
- The server's Grid, its only channel from the clients, received exactly those bytes.
- No individual unmasked update is among them: the masked vectors are uncorrelated
  with each client's true update, and no stretch of an update's bytes appears, while
  the global encoder moved by exactly the FedAvg of those true updates.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_cli
from fedavg_replay import server_step
from flwr.app import RecordDict
from flwr.common import bytes_to_ndarray
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key
from flwr.common.serde import ProtoRecordDict, recorddict_from_proto

from common.client_data import client_indices, client_inputs, load_with_split
from common.config import RunConfig
from common.messages import EVAL_RESULT, PARTITION_KEY, ROLE_RECORD
from common.serialize import checkpoint_shared_arrays

N, ROUNDS = 4, 2
# The scalars a client may send in clear besides num_examples (common/local_round.py).
DECLARED_METRICS = {"train-loss", "clipped-values", "dp-clipped"}
# ... and in its evaluation reply (client/federated_eval.py, client/evaluation_handler.py).
DECLARED_EVAL = {
    "role", "bytes-received", "pretext-loss", "pretext-samples", "embedding-std",
    "embedding-samples", "accuracy", "accuracy-samples", "knn-accuracy", "labels-used", "skipped",
}  # fmt: skip
# Besides training: the role question before round 1 and an evaluation after rounds 0..R.
OTHER_REPLIES = {(0, "query")} | {(r, "evaluate") for r in range(ROUNDS + 1)}
STAGE_KEYS = {
    "setup": {Key.PUBLIC_KEY_1, Key.PUBLIC_KEY_2},
    "share_keys": {Key.DESTINATION_LIST, Key.CIPHERTEXT_LIST},
    "collect_masked_vectors": {Key.MASKED_PARAMETERS},
    "unmask": {Key.NODE_ID_LIST, Key.SHARE_LIST},
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("inspect")
    out, rec = tmp / "run", tmp / "rec"
    args = [
        *("--dataset", "digits", "--clients", str(N), "--rounds", str(ROUNDS)),
        *("--local-epochs", "1", "--seed", "2", "--no-evaluate", "--out", str(out)),
    ]
    proc = run_cli("simulate", *args, env={"FEDSSL_RECORD_DIR": str(rec)})
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, rec


def _parse(blob: bytes) -> RecordDict:
    return recorddict_from_proto(ProtoRecordDict.FromString(blob))


def _sent(rec: Path, pid: int) -> list[tuple[int, str, bytes]]:
    """(round, stage, wire bytes) of every message client ``pid`` sent."""
    out = []
    for path in sorted((rec / "clients" / f"partition-{pid}").glob("round-*.pb")):
        _, rnd, rest = path.stem.split("-", 2)
        out.append((int(rnd), rest.rsplit("-", 1)[0], path.read_bytes()))
    return out


def _config() -> RunConfig:
    return RunConfig(
        dataset="digits",
        num_clients=N,
        num_server_rounds=ROUNDS,
        seed=2,
        local_epochs=1,
        evaluate=False,
    )


def _contains_any(haystack: bytes, needles: list[bytes]) -> bool:
    return any(n in haystack for n in needles)


def _distinctive_chunks(a: np.ndarray, width: int = 4, limit: int = 200) -> list[bytes]:
    """Byte strings of ``width`` consecutive values that are not all equal (runs of
    zeros could match by chance), as float32 and float64."""
    flat = a.ravel()
    chunks: list[bytes] = []
    for start in range(0, max(len(flat) - width, 0), width):
        piece = flat[start : start + width]
        if len(np.unique(piece)) > 1:
            chunks.append(piece.astype(np.float32).tobytes())
            chunks.append(piece.astype(np.float64).tobytes())
        if len(chunks) >= limit:
            break
    return chunks


def test_clients_send_only_protocol_material_and_declared_scalars(
    recorded: tuple[Path, Path],
) -> None:
    _, rec = recorded
    for pid in range(N):
        sent = _sent(rec, pid)
        expected = [(r, s) for r in range(1, ROUNDS + 1) for s in STAGE_KEYS] + [*OTHER_REPLIES]
        assert Counter((r, s) for r, s, _ in sent) == Counter(expected), (
            f"client {pid}: unexpected set of messages {sorted((r, s) for r, s, _ in sent)}"
        )
        for rnd, stage, blob in sent:
            content = _parse(blob)
            if stage in ("query", "evaluate"):
                _check_declared_reply(content, stage)
                continue
            assert set(content.config_records[RECORD_KEY_CONFIGS]) == STAGE_KEYS[stage]
            assert all(len(a) == 0 for a in content.array_records.values()), (
                f"client {pid} sent an array in clear at {stage}, round {rnd}"
            )
            if stage != "collect_masked_vectors":
                assert set(content.config_records) == {RECORD_KEY_CONFIGS}
                assert not content.metric_records
                continue
            metrics = content.config_records["fitres.metrics"]
            assert set(metrics) <= DECLARED_METRICS, set(metrics)
            assert all(isinstance(v, int | float) for v in metrics.values())
            assert set(content.metric_records) == {"fitres.num_examples"}


def test_no_raw_data_or_labels_leave_the_device(recorded: tuple[Path, Path]) -> None:
    _, rec = recorded
    cfg = _config()
    ds, _ = load_with_split(cfg.dataset, cfg.seed)
    parts = client_indices(cfg)
    for pid in range(N):
        wire = b"".join(blob for _, _, blob in _sent(rec, pid))
        x = client_inputs(cfg, pid)
        needles = [c for sample in x for c in _distinctive_chunks(sample, limit=4)]
        assert len(needles) > 50
        # The search finds a sample when it is there (so a pass means something) ...
        assert _contains_any(wire + x[7].tobytes(), needles)
        # ... and does not find any in what the client sent.
        assert not _contains_any(wire, needles), f"client {pid} sent raw input values"
        labels = np.asarray(ds.y)[parts[pid]]
        runs = [labels[i : i + 8] for i in range(0, len(labels) - 8, 4)]
        for dtype in (np.int64, np.int32, np.uint8):
            assert not _contains_any(wire, [r.astype(dtype).tobytes() for r in runs])


def test_server_received_exactly_what_clients_sent(recorded: tuple[Path, Path]) -> None:
    _, rec = recorded
    sent = Counter(blob for pid in range(N) for _, _, blob in _sent(rec, pid))
    received = Counter(p.read_bytes() for p in (rec / "server").glob("*.pb"))
    assert not list((rec / "server").glob("*.error"))
    assert sum(received.values()) == N * (ROUNDS * len(STAGE_KEYS) + len(OTHER_REPLIES))
    assert received == sent


def test_server_never_holds_an_individual_unmasked_update(recorded: tuple[Path, Path]) -> None:
    out, rec = recorded
    server_bytes = b"".join(p.read_bytes() for p in (rec / "server").glob("*.pb"))
    for rnd in range(1, ROUNDS + 1):
        plain: dict[int, list[np.ndarray]] = {}
        weights: dict[int, float] = {}
        for pid in range(N):
            with np.load(rec / "clients" / f"partition-{pid}" / f"plain-round-{rnd}.npz") as z:
                weights[pid] = float(z["num_examples"])
                plain[pid] = [z[f"arr_{i}"] for i in range(len(z.files) - 1)]
            # No stretch of the client's true update is anywhere in the server's input.
            needles = [c for a in plain[pid] for c in _distinctive_chunks(a, limit=8)]
            assert not _contains_any(server_bytes, needles)
            assert _contains_any(server_bytes + plain[pid][-1].tobytes(), needles)  # control
            # Its masked vector is uniform noise to the server: uncorrelated with the update.
            masked = _masked_vector(rec, pid, rnd)
            true = np.concatenate([a.ravel() for a in plain[pid]]).astype(np.float64)
            assert masked.size == true.size + 1  # SecAgg+ prepends the (masked) weight
            corr = float(np.corrcoef(masked[1:], true)[0, 1])
            assert abs(corr) < 0.05, f"client {pid}, round {rnd}: masked vector correlates {corr}"
            assert abs(masked.mean() / 2**32 - 0.5) < 0.01  # spread over the whole modulus
        # The recorded updates are the real ones: the aggregate is their FedAvg (times
        # the round's server step).
        # (Each update is one flat vector on the wire, in the checkpoint's shared order.)
        start = checkpoint_shared_arrays(out / "checkpoints" / f"round-{rnd - 1:04d}.pt")
        got = checkpoint_shared_arrays(out / "checkpoints" / f"round-{rnd:04d}.pt")
        g, new = (np.concatenate([a.ravel() for a in arrays]) for arrays in (start, got))
        total = sum(weights.values())
        mean = sum(weights[p] * plain[p][0].astype(np.float64) for p in range(N)) / total
        assert plain[0][0].shape == g.shape
        step = server_step(_config(), rnd)
        assert float(np.abs(new - (g + step * mean)).max()) < 1e-4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["completed"] and r["clients_aggregated"] == N for r in rows)


def _check_declared_reply(content: RecordDict, stage: str) -> None:
    """A role or evaluation reply: one config record of declared scalars, no arrays."""
    assert not content.array_records and not content.metric_records
    (name,) = content.config_records
    record = content.config_records[name]
    if stage == "query":
        # its role, and its partition: a simulated client's index, -1 on a real device
        assert name == ROLE_RECORD and set(record) == {"role", PARTITION_KEY}
        assert record[PARTITION_KEY] in range(N)
    else:
        assert name == EVAL_RESULT and set(record) <= DECLARED_EVAL, set(record)
        assert {"pretext-loss", "accuracy", "embedding-std"} <= set(record)  # it evaluated
    assert all(isinstance(v, int | float | str) for v in record.values())


def _masked_vector(rec: Path, pid: int, rnd: int) -> np.ndarray:
    (blob,) = [b for r, s, b in _sent(rec, pid) if r == rnd and s == "collect_masked_vectors"]
    cfg = _parse(blob).config_records[RECORD_KEY_CONFIGS]
    arrays = [bytes_to_ndarray(b) for b in cfg[Key.MASKED_PARAMETERS]]  # type: ignore[union-attr]
    return np.concatenate([a.ravel() for a in arrays]).astype(np.float64)
