"""A node sends unmasked updates only when it allows them itself."""

from __future__ import annotations

import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType

from client.mods.secagg import PlainUpdateRefused, optional_secaggplus_mod


@pytest.fixture(autouse=True)
def _task_identity() -> None:
    """Flower stamps messages with the current task; a test is its own small task."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id = 1
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 7


def _msg() -> Message:
    content = RecordDict({"fitins.config": ConfigRecord({"server-round": 1})})
    return Message(content=content, dst_node_id=7, message_type=MessageType.TRAIN)


def _ctx(node_config: dict) -> Context:
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


def _handler(msg: Message, ctxt: Context) -> Message:
    return Message(RecordDict({"ok": ConfigRecord({"trained": True})}), reply_to=msg)


def test_plain_training_request_is_refused_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDSSL_ALLOW_PLAIN_UPDATES", raising=False)
    with pytest.raises(PlainUpdateRefused, match="SecAgg"):
        optional_secaggplus_mod(_msg(), _ctx({}), _handler)


def test_node_can_allow_plain_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEDSSL_ALLOW_PLAIN_UPDATES", raising=False)
    reply = optional_secaggplus_mod(_msg(), _ctx({"allow-plain-updates": "true"}), _handler)
    assert reply.content.config_records["ok"]["trained"] is True
    monkeypatch.setenv("FEDSSL_ALLOW_PLAIN_UPDATES", "1")
    reply = optional_secaggplus_mod(_msg(), _ctx({}), _handler)
    assert reply.content.config_records["ok"]["trained"] is True
