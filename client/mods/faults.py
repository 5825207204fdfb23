"""Fault injection for drills and tests: make chosen clients fail at a chosen stage.

``FEDSSL_FAULTS="share_keys@0,1;train@2#3"`` makes partitions 0 and 1 fail at the
SecAgg+ share-keys stage in every round and partition 2 fail while training in
round 3. Stages: setup, share_keys, collect_masked_vectors, unmask (SecAgg+), train
(the message that trains, in any run) and nan (one value of the weights the client
starts from becomes NaN, so its update is not finite and must not be sent).
The ClientApp installs this mod only when the variable is set (``train_mods``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, Context, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from client.mods.secagg import secagg_stage
from client.node_config import partition_id_of
from common.errors import FedsslError

ENV = "FEDSSL_FAULTS"
# The message that trains: SecAgg+'s masked-vector stage, or a plain training message.
TRAINING_STAGES = (None, "collect_masked_vectors")
PARAMETERS_RECORD = "fitins.parameters"  # the legacy layout's global weights


class InjectedFault(FedsslError, RuntimeError):
    """Raised on purpose by a fault drill."""


@dataclass(frozen=True)
class Fault:
    stage: str
    partitions: frozenset[int]
    round: int | None


def parse_faults(spec: str) -> list[Fault]:
    faults: list[Fault] = []
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        stage, _, rest = item.partition("@")
        parts, _, rnd = rest.partition("#")
        if not stage or not parts:
            raise ValueError(f"{ENV}: cannot parse {item!r}; expected STAGE@P1,P2[#ROUND]")
        faults.append(
            Fault(stage, frozenset(int(p) for p in parts.split(",")), int(rnd) if rnd else None)
        )
    return faults


def should_fail(stage: str, partition_id: int, server_round: int) -> bool:
    spec = os.environ.get(ENV, "")
    if not spec:
        return False
    return any(
        f.stage == stage
        and partition_id in f.partitions
        and (f.round is None or f.round == server_round)
        for f in parse_faults(spec)
    )


def fault_injection_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    """Fail at a SecAgg+ stage or while training, or corrupt the weights a client starts
    from (``nan``), for the partitions and rounds ``FEDSSL_FAULTS`` names."""
    stage = secagg_stage(msg)
    rnd = int(msg.metadata.group_id or 0)
    pid = partition_id_of(ctxt)
    if stage is not None and should_fail(stage, pid, rnd):
        raise InjectedFault(f"injected fault at stage {stage}, round {rnd}")
    if stage in TRAINING_STAGES:
        if should_fail("train", pid, rnd):
            raise InjectedFault(f"injected fault while training, round {rnd}")
        if should_fail("nan", pid, rnd):
            msg.content = _with_a_nan(msg.content)
    return call_next(msg, ctxt)


def _with_a_nan(content: RecordDict) -> RecordDict:
    """The training instruction with one NaN in the global weights it carries (every
    other record, SecAgg+'s included, unchanged)."""
    params = content.array_records[PARAMETERS_RECORD]
    first = next(iter(params))
    values = params[first].numpy().copy()
    values.flat[0] = np.nan
    params[first] = Array(values)
    return content
