"""The device's side of a federated-evaluation message: store the delivered global
encoder (``client.delivery``) and evaluate it on the local data
(``client.federated_eval``); reply with declared scalars only."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict

from client.mods.timing import note
from client.node_config import device_data, is_simulated, partition_id_of, role_of
from common.config import RunConfig
from common.config_values import Scalar
from common.data.errors import DataError
from common.messages import (
    ENCODER_RECORD,
    EVAL_RECORD,
    EVAL_RESULT,
    ROUND_KEY,
    RUN_KEY,
    read_training_config,
)

log = logging.getLogger("fedssl.client")
# Keys of the evaluate instruction that are not run-config keys.
EVAL_ONLY_KEYS = ("sha256", "label-range")


def evaluate_message(msg: Message, context: Context) -> Message:
    """Verify, store and evaluate the delivered encoder; reply with the figures."""
    from client.delivery import DeliveryError, check_delivery, store
    from client.federated_eval import evaluate_on_device, settings_from
    from common.serialize import shared_arrays_of

    record = dict(msg.content.config_records[EVAL_RECORD])
    flat = {k: v for k, v in record.items() if k not in EVAL_ONLY_KEYS}
    cfg, server_round, run_key = read_training_config(flat)
    payload = _payload(msg)
    role = role_of(context, lambda: _training_clients(cfg))
    result: dict[str, Scalar] = {"role": role, "bytes-received": len(payload)}
    try:
        checkpoint = check_delivery(payload, str(record["sha256"]), server_round)
    except DeliveryError as exc:
        log.warning("%s", exc)
        return _reply(msg, {**result, "skipped": str(exc)})
    state_dir = context.node_config.get("state-dir")
    if state_dir:
        path = store(Path(str(state_dir)), payload, server_round, run_key)
        note(stored=str(path))
    try:
        x, y = _local_data(cfg, context)
    except DataError as exc:  # a live device whose stream has sent nothing yet
        log.warning("round %d: evaluation: %s", server_round, exc)
        note(**result, skipped=str(exc))
        return _reply(msg, {**result, "skipped": str(exc)})
    settings = settings_from({**record, "seed": cfg.seed})
    figures = evaluate_on_device(cfg, shared_arrays_of(checkpoint, "delivery"), x, y, settings)
    if "skipped" in figures:
        log.warning("round %d: evaluation: %s", server_round, figures["skipped"])
    note(**figures)
    return _reply(msg, {**result, **figures})


def _payload(msg: Message) -> bytes:
    arrays = msg.content.array_records[ENCODER_RECORD]
    return bytes(next(iter(arrays.values())).numpy().tobytes())


def _training_clients(cfg: RunConfig) -> int:
    from common.client_data import client_indices

    return len(client_indices(cfg))


def _local_data(cfg: RunConfig, context: Context) -> tuple[np.ndarray, np.ndarray | None]:
    """This node's windows and labels (None when its file has no labels)."""
    if not is_simulated(context):
        return device_data(context)
    from common.client_data import client_data

    return client_data(cfg, partition_id_of(context))


def _reply(msg: Message, figures: dict[str, Any]) -> Message:
    return Message(RecordDict({EVAL_RESULT: ConfigRecord(figures)}), reply_to=msg)


def role_reply(msg: Message, context: Context, flat: dict[str, Any]) -> Message:
    """Answer the server's question: does this node train, or only evaluate?"""
    from common.messages import PARTITION_KEY, ROLE_RECORD

    cfg = RunConfig.from_flat({k: v for k, v in flat.items() if k not in (ROUND_KEY, RUN_KEY)})
    role = role_of(context, lambda: _training_clients(cfg))
    answer = ConfigRecord({"role": role, PARTITION_KEY: partition_id_of(context)})
    return Message(RecordDict({ROLE_RECORD: answer}), reply_to=msg)
