"""Audit trail of what a device sends, for privacy drills and tests.

With ``FEDSSL_RECORD_DIR`` set, ``sent_record_mod`` (the outermost mod) writes every
reply this ClientApp sends, serialized exactly as Flower puts it on the wire, and
``plain_update_record_mod`` (inside SecAgg+) writes the unmasked update the handler
produced, which must never leave the device. A test then compares the two with what
the server received (``server/recording_grid.py``). Unset in normal use: the mods
then only pass the message on.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import parameters_to_ndarrays
from flwr.common.serde import recorddict_to_proto
from flwr.compat.common import recorddict_compat as compat

from client.mods.secagg import secagg_stage
from client.node_config import partition_id_of

ENV = "FEDSSL_RECORD_DIR"


def record_dir() -> Path | None:
    root = os.environ.get(ENV, "")
    return Path(root) if root else None


def wire_bytes(msg: Message) -> bytes:
    """The message content as serialized for transport."""
    return recorddict_to_proto(msg.content).SerializeToString(deterministic=True)


def _client_dir(root: Path, ctxt: Context) -> Path:
    out = root / "clients" / f"partition-{partition_id_of(ctxt)}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def sent_record_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Record the reply as it leaves the device (content bytes, stage, round)."""
    root = record_dir()
    if root is None:
        return call_next(msg, ctxt)
    stage = secagg_stage(msg) or str(msg.metadata.message_type)
    rnd = msg.metadata.group_id or "0"
    reply = call_next(msg, ctxt)
    name = f"round-{rnd}-{stage}-{uuid.uuid4().hex[:8]}.pb"
    (_client_dir(root, ctxt) / name).write_bytes(wire_bytes(reply))
    return reply


def plain_update_record_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Record the unmasked update the handler returned (before SecAgg+ masks it)."""
    reply = call_next(msg, ctxt)
    root = record_dir()
    if root is not None and reply.has_content():
        fitres = compat.recorddict_to_fitres(reply.content, keep_input=True)
        arrays = parameters_to_ndarrays(fitres.parameters)
        path = _client_dir(root, ctxt) / f"plain-round-{msg.metadata.group_id or '0'}.npz"
        np.savez(path, *arrays, num_examples=fitres.num_examples)
    return reply
