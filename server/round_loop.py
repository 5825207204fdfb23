"""The server's round loop: fit workflow per round, then record, checkpoint, report.

Flower's DefaultWorkflow loops over rounds itself and says nothing when SecAgg+
halts a round. This loop drives the same fit workflows one round at a time, so
every round ends in a record that says whether it completed and why not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flwr.app import ConfigRecord
from flwr.common import ndarrays_to_parameters
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext
from flwr.server.compat.app_utils import start_update_client_manager_thread
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp import Grid

from server.round_outcome import RoundOutcome
from server.strategy import DeltaFedAvg

log = logging.getLogger("fedssl.server")

Workflow = Callable[[Grid, LegacyContext], None]
RoundHook = Callable[[RoundOutcome, float], None]


def run_rounds(
    grid: Grid,
    context: LegacyContext,
    fit_workflow: Workflow,
    strategy: DeltaFedAvg,
    *,
    first_round: int,
    last_round: int,
    on_round_end: RoundHook,
    wait_for_clients: int,
    secure: bool,
    round_min_clients: int = 2,
    round_wait_s: float = 300.0,
    on_start: Callable[[], None] | None = None,
) -> None:
    """Run rounds ``first_round..last_round``; ``on_start()`` once the clients are there,
    ``on_round_end(outcome, seconds)`` after each round."""
    thread, f_stop, c_done = start_update_client_manager_thread(grid, context.client_manager)
    try:
        c_done.wait()
        _wait_for_clients(context, wait_for_clients)
        if on_start is not None:
            on_start()
        params = ndarrays_to_parameters(strategy.global_arrays)
        context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
            params, keep_input=True
        )
        cfg = ConfigRecord({Key.START_TIME: time.time()})
        context.state.config_records[MAIN_CONFIGS_RECORD] = cfg
        for server_round in range(first_round, last_round + 1):
            cfg[Key.CURRENT_ROUND] = server_round
            strategy.begin_round(server_round)
            t0 = time.perf_counter()
            available = _enough_clients(context, round_min_clients, round_wait_s)
            try:
                if available < round_min_clients:
                    strategy.outcome.reason = (
                        f"only {available} clients connected; a round needs {round_min_clients}"
                        f"{' for secure aggregation' if secure else ''} (waited {round_wait_s:.0f} s)"
                    )
                else:
                    fit_workflow(grid, context)
            except Exception as exc:  # a workflow crash fails the round, not the run
                log.exception("round %d: fit workflow raised", server_round)
                strategy.outcome.reason = f"workflow error: {exc.__class__.__name__}: {exc}"
                strategy.outcome.completed = False
            outcome = strategy.outcome
            if not outcome.completed and not outcome.reason:
                if not outcome.clients_sampled:
                    outcome.reason = "no clients were selected"
                elif secure:
                    outcome.reason = (
                        "secure aggregation aborted (too few clients survived to reconstruct "
                        "the masks); global encoder unchanged"
                    )
                else:
                    outcome.reason = "no client results; global encoder unchanged"
            on_round_end(outcome, time.perf_counter() - t0)
    finally:
        f_stop.set()
        thread.join(timeout=10)


def _enough_clients(context: LegacyContext, needed: int, timeout: float) -> int:
    """Wait up to ``timeout`` for ``needed`` connected clients (devices that dropped out
    may come back); return how many are connected."""
    manager = context.client_manager
    if manager.num_available() < needed:
        log.warning(
            "only %d clients connected, %d needed; waiting up to %.0f s",
            manager.num_available(),
            needed,
            timeout,
        )
        manager.wait_for(needed, timeout=int(timeout))
    return manager.num_available()


# Up to this many clients, each arrival gets its own line; beyond, one line per poll.
PER_CLIENT_LINES = 20


def _log_arrivals(seen: set[str], now: set[str], needed: int) -> None:
    """Who connected or left since the last poll, each with the count at that moment."""
    arrived, left = sorted(now - seen), sorted(seen - now)
    if needed > PER_CLIENT_LINES:
        if arrived or left:
            log.info(
                "clients connected: %d/%d (+%d, -%d)", len(now), needed, len(arrived), len(left)
            )
        return
    count = len(seen)
    for cid in left:
        count -= 1
        log.info("client left: node %s (%d/%d)", cid, count, needed)
    for cid in arrived:
        count += 1
        log.info("client connected: node %s (%d/%d)", cid, count, needed)


def _wait_for_clients(context: LegacyContext, needed: int, timeout: float = 3600.0) -> None:
    """Block until ``needed`` nodes are connected, logging each arrival and departure."""
    manager = context.client_manager
    seen: set[str] = set()
    log.info("waiting for %d clients to connect", needed)
    deadline = time.monotonic() + timeout
    while True:
        now = set(manager.all())
        _log_arrivals(seen, now, needed)
        seen = now
        if len(now) >= needed:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(now)} of {needed} clients connected in {timeout:.0f} s")
        manager.wait_for(len(now) + 1, timeout=2)
