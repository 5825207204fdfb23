"""The simulation engine's one reach into Flower's internals (verified with flwr 1.42.0).

Flower's simulation engine hands messages to the Ray backend from a thread
(``flwr.server.superlink.fleet.vce.vce_api.add_messages_to_queue``) that, every 0.1 s,
asks the in-memory link state for one message per simulated node. Each of those calls
(``InMemoryLinkState.get_message_ins``) walks every stored message and runs Flower's
validity check on each, so one sweep costs nodes x stored messages: about a million
checks per sweep at 1,000 clients, back to back for as long as a stage lasts, a whole
core of the two this project runs on; at 10,000 clients one sweep takes minutes.

``deliver_pending`` does the same job in one walk: for every node, its oldest
undelivered message, checked by Flower's own ``_check_stored_messages`` (expiry and
federation membership) and marked delivered as Flower marks it. ``use_single_pass_delivery``
swaps it in for the engine's loop before a simulation starts.
``tests/simulations/test_flower_vce.py`` compares it with Flower's own loop on a real
link state and fails loudly when Flower moves any of these names.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from queue import Queue
from types import ModuleType
from typing import Any

from client.flower_internals import flower_module

VCE_MODULE = "flwr.server.superlink.fleet.vce.vce_api"
VCE_NAMES = ("add_messages_to_queue", "run_api")
# What deliver_pending uses of Flower's InMemoryLinkState.
LINKSTATE_NAMES = ("lock", "message_ins_store", "_check_stored_messages")
SWEEP_S = 0.1  # Flower's interval between sweeps


def deliver_pending(state: Any, nodes: Collection[int]) -> list[Any]:
    """Each node's oldest undelivered, still valid message, marked delivered (one walk)."""
    from flwr.supercore.date import now

    picked: dict[int, Any] = {}
    with state.lock:
        for msg_id, msg in list(state.message_ins_store.items()):
            meta = msg.metadata
            dst = meta.dst_node_id
            if meta.delivered_at != "" or dst in picked or dst not in nodes:
                continue
            state._check_stored_messages({msg_id})  # may drop an expired message
            if msg_id in state.message_ins_store:
                picked[dst] = msg
        delivered_at = now().isoformat()
        for msg in picked.values():
            msg.metadata.delivered_at = delivered_at
    return list(picked.values())


def _single_pass_loop(
    state: Any, queue: Queue[Any], nodes_mapping: dict[int, int], f_stop: threading.Event
) -> None:
    """The engine's delivery thread, with one walk per sweep instead of one per node."""
    nodes = set(nodes_mapping)
    while not f_stop.is_set():
        for msg in deliver_pending(state, nodes):
            queue.put(msg)
        f_stop.wait(SWEEP_S)


def use_single_pass_delivery() -> ModuleType:
    """Replace the engine's delivery loop in this process; returns Flower's module."""
    vce = flower_module(VCE_MODULE, VCE_NAMES)
    vce.add_messages_to_queue = _single_pass_loop  # type: ignore[attr-defined]
    return vce
