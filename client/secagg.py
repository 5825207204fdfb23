"""SecAgg+ on the client, for runs that use it and runs that don't.

Flower's ``secaggplus_mod`` raises KeyError on a training message that carries no
SecAgg+ stage; this wrapper hands such messages (plain FedAvg runs) straight to the
training handler, so one ClientApp serves both.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key


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


def optional_secaggplus_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    if is_secagg_message(msg):
        return secaggplus_mod(msg, ctxt, call_next)
    return call_next(msg, ctxt)
