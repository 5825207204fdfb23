"""A device's answer to the server's evaluate message, built by the server's own message
builder: the encoder is stored byte for byte, a corrupt one is refused by its checksum
(the last good copy stays) and bad labels are named, with a reply either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict
from sklearn.datasets import load_digits

from client.delivery import stored
from client.evaluation_handler import evaluate_message
from common.config import RunConfig
from common.local_round import initial_global_arrays
from common.messages import ENCODER_RECORD, EVAL_RESULT
from server.federated_eval import evaluation_content
from server.round_report import save_global

CFG = RunConfig(dataset="digits", input_shape="1x8x8")
SHAPE = (1, 8, 8)


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    """Flower stamps messages with the current task; a test is its own small task."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id = 1
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 7


def _device(tmp: Path, labels: np.ndarray | None = None) -> Context:
    d = load_digits()
    data = tmp / "device.npz"
    y = d.target[:400] if labels is None else labels
    np.savez(data, x=(d.images[:400] / 16.0).astype(np.float32)[:, None], y=y)
    node_config = {"data-path": str(data), "state-dir": str(tmp / "state")}
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


def _checkpoint(tmp: Path, server_round: int) -> bytes:
    path = tmp / f"round-{server_round}.pt"
    arrays = initial_global_arrays(CFG.replace(seed=server_round), SHAPE)
    save_global(CFG, SHAPE, path, arrays, server_round)
    return path.read_bytes()


def _ask(ctx: Context, payload: bytes, server_round: int, corrupt: bool = False) -> dict:
    content = evaluation_content(CFG, server_round, payload, label_range=10, eval_classes=10)
    if corrupt:  # damaged on the way: the checksum the server sent no longer matches
        wire = bytearray(payload)
        wire[len(wire) // 2] ^= 0xFF
        content = RecordDict(
            {
                **content,
                ENCODER_RECORD: type(content[ENCODER_RECORD])(
                    [np.frombuffer(bytes(wire), np.uint8)]
                ),
            }
        )
    msg = Message(content=content, dst_node_id=7, message_type="evaluate")
    return dict(evaluate_message(msg, ctx).content.config_records[EVAL_RESULT])


def test_a_delivery_is_stored_and_evaluated(tmp_path: Path) -> None:
    ctx = _device(tmp_path)
    payload = _checkpoint(tmp_path, 1)
    reply = _ask(ctx, payload, 1)
    assert reply["role"] == "train" and reply["bytes-received"] == len(payload)
    assert 0 <= float(reply["accuracy"]) <= 1 and "skipped" not in reply
    assert (tmp_path / "state" / "global" / "encoder.pt").read_bytes() == payload
    assert stored(tmp_path / "state")["round"] == 1  # type: ignore[index]


def test_a_corrupt_delivery_is_refused_and_the_previous_encoder_kept(tmp_path: Path) -> None:
    ctx = _device(tmp_path)
    good = _checkpoint(tmp_path, 1)
    _ask(ctx, good, 1)
    reply = _ask(ctx, _checkpoint(tmp_path, 2), 2, corrupt=True)
    assert "checksum" in str(reply["skipped"]) and "accuracy" not in reply
    assert (tmp_path / "state" / "global" / "encoder.pt").read_bytes() == good
    assert stored(tmp_path / "state")["round"] == 1  # type: ignore[index]


def test_labels_out_of_range_are_named_and_the_round_goes_on(tmp_path: Path) -> None:
    labels = load_digits().target[:400].copy()
    labels[:5] = 42
    ctx = _device(tmp_path, labels)
    reply = _ask(ctx, _checkpoint(tmp_path, 1), 1)
    assert "labels out of range: [42]" in str(reply["skipped"]) and "accuracy" not in reply
    assert reply["pretext-loss"] is not None  # the label-free figures are still there
