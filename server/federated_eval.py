"""Deliver the global encoder to every connected node and collect its evaluation.

The message carries the round's checkpoint file itself (its bytes and SHA-256: this
direction is not secret, so no SecAgg+) and what to evaluate with; each node stores the
file (a real device, in its state dir) and replies with declared scalars only. The
server aggregates them per role (``federated_evaluation`` in the round's row).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from common.config import RunConfig
from common.messages import (
    ENCODER_RECORD,
    EVAL_RECORD,
    EVAL_RESULT,
    EVALUATE,
    ROUND_KEY,
    TRAIN,
    training_config,
)
from server.failures import describe_failure
from server.fed_eval_summary import summarize
from server.node_roles import NodeRoles

log = logging.getLogger("fedssl.server")


def evaluate_on_devices(
    grid: Grid,
    cfg: RunConfig,
    server_round: int,
    encoder_file: Path,
    roles: NodeRoles,
    label_range: int,
    eval_classes: int,
) -> dict[str, Any]:
    """Send ``encoder_file`` to every connected node; the aggregated figures."""
    t0 = time.perf_counter()
    payload = encoder_file.read_bytes()
    nodes = list(grid.get_node_ids())
    roles.ask(grid, nodes)
    content = evaluation_content(cfg, server_round, payload, label_range, eval_classes)
    messages = [
        Message(content, dst_node_id=n, message_type="evaluate", group_id=str(server_round))
        for n in nodes
    ]
    replies = list(grid.send_and_receive(messages, timeout=cfg.secagg_timeout))
    rows, failures = _collect(replies, roles)
    summary = summarize(rows)
    summary.update(
        round=server_round,
        nodes_asked=len(nodes),
        failures=failures[:10],
        bytes_per_device=len(payload),
        seconds=round(time.perf_counter() - t0, 3),
    )
    return summary


def evaluation_content(
    cfg: RunConfig, server_round: int, payload: bytes, label_range: int, eval_classes: int
) -> RecordDict:
    """The evaluate message: the checkpoint's bytes, their SHA-256, and what to evaluate."""
    return RecordDict(
        {
            ENCODER_RECORD: ArrayRecord([np.frombuffer(payload, dtype=np.uint8)]),
            EVAL_RECORD: ConfigRecord(
                {
                    **training_config(cfg),
                    ROUND_KEY: server_round,
                    "sha256": hashlib.sha256(payload).hexdigest(),
                    "eval-labels-per-class": cfg.eval_labels_per_class,
                    "eval-classes": eval_classes,
                    "label-range": label_range,
                }
            ),
        }
    )


def _collect(replies: list[Message], roles: NodeRoles) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for reply in replies:
        if reply.has_error():
            failures.append(describe_failure(reply.error.reason or "an error without a reason"))
            continue
        figures = dict(reply.content.config_records[EVAL_RESULT])
        node = reply.metadata.src_node_id
        role = str(figures.get("role", TRAIN))
        roles.roles.setdefault(node, EVALUATE if role == EVALUATE else TRAIN)
        rows.append(figures)
    return rows, failures


def evaluation_line(summary: dict[str, Any]) -> str:
    """One line: the held-out devices' figures when there are any, else every device's."""
    unseen = summary.get(EVALUATE) or {}
    part, who = (unseen, "unseen devices") if unseen.get("devices") else (summary, "devices")
    acc = part.get("accuracy")
    text = (
        f"personal-head accuracy {acc:.1%} (median {part['accuracy_median']:.1%}, "
        f"min {part['accuracy_min']:.1%}), kNN {part['knn_accuracy']:.1%}"
        if acc is not None
        else "no labeled device"
    )
    loss = part.get("pretext_loss")
    problems = len(summary.get("skipped", [])) + len(summary.get("failures", []))
    probe = summary.get("server_linear_probe", {}).get("accuracy")
    return (
        f"[round {summary['round']}] evaluation on {part.get('devices', 0)} {who}: {text}, "
        f"pretext loss {'-' if loss is None else f'{loss:.4f}'}"
        f"{f', {problems} problems' if problems else ''} | {summary['seconds']:.1f} s"
        f"{'' if probe is None else f' | server linear probe {probe:.1%}'}"
    )
