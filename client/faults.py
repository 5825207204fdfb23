"""Fault injection for drills and tests: make chosen clients fail at a chosen stage.

``FEDSSL_FAULTS="share_keys@0,1;train@2#3"`` makes partitions 0 and 1 fail at the
SecAgg+ share-keys stage in every round and partition 2 fail while training in
round 3. Stages: setup, share_keys, collect_masked_vectors, unmask (SecAgg+), train
(any run) and nan (one local input value becomes NaN, so the update is not finite).
Unset in normal use; the variable is read per message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable

from client.secagg import secagg_stage

ENV = "FEDSSL_FAULTS"


class InjectedFault(RuntimeError):
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


def partition_id_of(ctxt: Context) -> int:
    return int(ctxt.node_config.get("partition-id", -1))


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
    """Fail at a SecAgg+ stage (the ``train`` stage is checked by the training handler)."""
    stage = secagg_stage(msg)
    rnd = int(msg.metadata.group_id or 0)
    if stage is not None and should_fail(stage, partition_id_of(ctxt), rnd):
        raise InjectedFault(f"injected fault at stage {stage}, round {rnd}")
    return call_next(msg, ctxt)
