"""The simulation engine's delivery loop, one walk per sweep, against Flower's own loop.

Both run on a real in-memory link state built the way ``flwr.simulation`` builds it,
with real messages pushed through Flower's ``InMemoryGrid``.
"""

from __future__ import annotations

import threading
import time
from queue import Queue
from typing import Any

import pytest
from flwr.app import RecordDict
from flwr.common.constant import RUN_ID_NUM_BYTES, SUPERLINK_NODE_ID, TASK_ID_NUM_BYTES
from flwr.proto.task_pb2 import Task
from flwr.server.superlink.fleet.vce import vce_api
from flwr.server.superlink.linkstate import LinkStateFactory
from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
from flwr.server.superlink.linkstate.utils import generate_rand_int_from_bytes
from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
from flwr.supercore.object_store import ObjectStoreFactory
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity
from flwr.superlink.federation import NoOpFederationManager
from flwr.superlink.grid import InMemoryGrid

from client.flower_internals import FlowerInternalsError, flower_module
from simulations import flower_vce
from simulations.flower_vce import LINKSTATE_NAMES, VCE_MODULE, VCE_NAMES, deliver_pending

FLOWER_LOOP = vce_api.add_messages_to_queue  # captured before any patch


class OneSweep(threading.Event):
    """A stop event that lets a delivery loop run exactly one sweep, without waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        return self.asked > 1

    def wait(self, timeout: float | None = None) -> bool:
        return True


@pytest.fixture(autouse=True)
def _as_the_simulation_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's simulation names the server's task identity (process-wide) before any
    message is created; restored after each test."""
    for name in ("_task_id", "_run_id", "_node_id"):
        monkeypatch.setattr(TaskIdentity, name, None)


def _federation(nodes: int) -> tuple[Any, dict[int, int], InMemoryGrid]:
    factory = LinkStateFactory(
        FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory()
    )
    state = factory.state()
    run = Run.create_empty(run_id=generate_rand_int_from_bytes(RUN_ID_NUM_BYTES))
    run.primary_task_id = generate_rand_int_from_bytes(TASK_ID_NUM_BYTES)
    run.federation_id = NOOP_FEDERATION_ID
    state.run_ids[run.run_id] = RunRecord(run=run)
    TaskIdentity.task_id, TaskIdentity.run_id = 1, run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    state.task_store[run.primary_task_id] = Task(task_id=run.primary_task_id, run_id=run.run_id)
    mapping = vce_api._register_nodes(nodes, factory)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)
    return state, mapping, grid


def _push(grid: InMemoryGrid, mapping: dict[int, int], plan: list[tuple[int, float | None]]):
    """Push one message per (partition, ttl); returns message id -> (partition, k-th)."""
    by_partition = {p: nid for nid, p in mapping.items()}
    tags: dict[str, tuple[int, int]] = {}
    for k, (partition, ttl) in enumerate(plan):
        msg = grid.create_message(RecordDict(), "train", by_partition[partition], "g", ttl=ttl)
        (mid,) = grid.push_messages([msg])
        tags[mid] = (partition, k)
    return tags


def _sweep(loop: Any, state: Any, mapping: dict[int, int]) -> list[Any]:
    queue: Queue[Any] = Queue()
    loop(state, queue, mapping, OneSweep())
    return [queue.get() for _ in range(queue.qsize())]


# Partition 1 holds two messages, partition 3 one that expires before the sweep, and
# partition 4 none.
PLAN = [(0, None), (1, None), (2, None), (1, None), (3, 0.05), (0, None)]


def _delivered(loop: Any) -> list[set[tuple[int, int]]]:
    state, mapping, grid = _federation(5)
    tags = _push(grid, mapping, PLAN)
    time.sleep(0.1)  # partition 3's message expires
    rounds = [_sweep(loop, state, mapping) for _ in range(4)]
    assert all(m.metadata.delivered_at != "" for r in rounds for m in r)
    return [{tags[m.metadata.message_id] for m in r} for r in rounds]


def test_single_pass_delivers_what_flowers_loop_delivers_sweep_by_sweep() -> None:
    flower = _delivered(FLOWER_LOOP)
    ours = _delivered(flower_vce._single_pass_loop)
    assert ours == flower
    # And what that is: each node's oldest undelivered message per sweep, none expired.
    assert flower == [{(0, 0), (1, 1), (2, 2)}, {(1, 3), (0, 5)}, set(), set()]


def test_one_walk_per_sweep_whatever_the_number_of_nodes() -> None:
    state, mapping, grid = _federation(300)
    _push(grid, mapping, [(p, None) for p in range(300)])
    calls = 0
    check = state._check_stored_messages

    def counted(ids: set[str], run_id: int | None = None) -> None:
        nonlocal calls
        calls += 1
        check(ids, run_id)

    state._check_stored_messages = counted
    assert len(deliver_pending(state, set(mapping))) == 300
    assert calls == 300  # Flower's loop: 300 nodes x up to 300 stored messages
    assert deliver_pending(state, set(mapping)) == [] and calls == 300


def test_patch_replaces_only_the_engines_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vce_api, "add_messages_to_queue", FLOWER_LOOP)
    module = flower_vce.use_single_pass_delivery()
    assert module is vce_api and vce_api.add_messages_to_queue is flower_vce._single_pass_loop
    assert vce_api.run_api.__code__.co_names.count("add_messages_to_queue") == 1


def test_the_names_it_relies_on_are_where_they_were() -> None:
    """Fails loudly when Flower moves the engine's loop or the link state's parts."""
    flower_module(VCE_MODULE, VCE_NAMES)
    state, _, _ = _federation(1)
    assert all(hasattr(state, name) for name in LINKSTATE_NAMES)
    assert isinstance(state.message_ins_store, dict)
    with pytest.raises(FlowerInternalsError, match="verified with flwr"):
        flower_module(VCE_MODULE, ("no_such_loop",))
