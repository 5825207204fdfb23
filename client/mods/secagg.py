"""SecAgg+ on the client, and the node's refusal to send unmasked updates.

Flower's ``secaggplus_mod`` raises KeyError on a training message that carries no
SecAgg+ stage. This wrapper runs SecAgg+ when the server asks for it and otherwise
refuses to train, unless the node itself allows plain updates (node config
``allow-plain-updates=true`` or ``FEDSSL_ALLOW_PLAIN_UPDATES=1``, which
``fedssl simulate --no-secure-aggregation`` sets). The server alone must not be able
to switch masking off without the device noticing.
"""

from __future__ import annotations

import os

from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key

from client.flower_internals import use_fast_shamir_split
from common.errors import FedsslError

ALLOW_PLAIN_ENV = "FEDSSL_ALLOW_PLAIN_UPDATES"
ALLOW_PLAIN_KEY = "allow-plain-updates"


use_fast_shamir_split()  # the process that imports the mod splits its secrets fast


class PlainUpdateRefused(FedsslError, PermissionError):
    """The server asked for an unmasked update and this node does not allow it."""


def is_secagg_message(msg: Message) -> bool:
    if msg.metadata.message_type != MessageType.TRAIN:
        return False
    record = msg.content.config_records.get(RECORD_KEY_CONFIGS)
    return record is not None and Key.STAGE in record


def secagg_stage(msg: Message) -> str | None:
    """The SecAgg+ stage a message belongs to (setup, share_keys, ...), if any."""
    if not is_secagg_message(msg):
        return None
    return str(msg.content.config_records[RECORD_KEY_CONFIGS][Key.STAGE])


def plain_updates_allowed(ctxt: Context) -> bool:
    node = str(ctxt.node_config.get(ALLOW_PLAIN_KEY, "")).lower() in ("true", "1", "yes")
    return node or os.environ.get(ALLOW_PLAIN_ENV, "") == "1"


def optional_secaggplus_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    if is_secagg_message(msg):
        return secaggplus_mod(msg, ctxt, call_next)
    if msg.metadata.message_type == MessageType.TRAIN and not plain_updates_allowed(ctxt):
        raise PlainUpdateRefused(
            "the server asked for an unmasked update; this node sends updates only through "
            f"SecAgg+ (set node config {ALLOW_PLAIN_KEY}=true or {ALLOW_PLAIN_ENV}=1 to allow)"
        )
    return call_next(msg, ctxt)
