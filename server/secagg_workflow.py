"""SecAgg+ that survives clients lost before their key shares went out.

Flower 1.42's ``SecAggPlusWorkflow`` remembers every *sampled* client until the
unmask stage and there asks the survivors for shares of each one's secrets. A
client that dropped at setup or at share-keys never distributed shares, so the
round aborts with "Not enough shares", although no survivor ever masked its
vector with that client (a client adds pairwise masks only for the neighbours
whose encrypted shares it received: ``secaggplus_mod._collect_masked_vectors``).

It also times each stage into the round's outcome (``secagg_seconds`` in
``metrics.jsonl``): with large cohorts the key agreement and share routing, not the
training, take most of a round.

This subclass forgets those clients once the share-keys stage is over: they leave
the sampled set and every neighbourhood, exactly as if they had never been sampled.
Clients lost later are handled by the protocol as before (Bell et al., CCS 2020):
lost at the masked-vector stage, their pairwise masks are rebuilt from shares and
the round aggregates the others; lost at unmasking, their masked vector is already
in the sum and their own mask seed is rebuilt from the survivors' shares.

The unmask stage rebuilds one secret per client with Flower's ``combine_shares``
(about 30 ms each, pure Python); the workflow's module is pointed at
``common.shamir.combine_shares`` instead (same format and result, coefficients cached
per set of share indices, about 1 ms). This is the server's one reach into Flower's
internals beside the ``WorkflowState`` it reads (verified with flwr 1.42.0;
``tests/server/test_secagg_workflow.py`` fails loudly when the name moves).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flwr.server import LegacyContext
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.secure_aggregation import secaggplus_workflow
from flwr.server.workflow.secure_aggregation.secaggplus_workflow import WorkflowState
from flwr.serverapp import Grid

log = logging.getLogger("fedssl.server")


Stage = Callable[[Grid, LegacyContext, WorkflowState], bool]


def _timed(
    name: str, stage: Stage, grid: Grid, context: LegacyContext, state: WorkflowState
) -> bool:
    """Run one of Flower's stages; its wall seconds go into the round's outcome."""
    t0 = time.perf_counter()
    ok = stage(grid, context, state)
    outcome = getattr(context.strategy, "outcome", None)  # DeltaFedAvg's RoundOutcome
    if outcome is not None:
        outcome.secagg_seconds[name] = round(time.perf_counter() - t0, 3)
    return ok


def use_fast_combine() -> None:
    """Point Flower's SecAgg+ workflow at ``common.shamir.combine_shares``."""
    from client.flower_internals import flower_module
    from common.shamir import combine_shares

    flower_module(secaggplus_workflow.__name__, ("combine_shares",))
    secaggplus_workflow.combine_shares = combine_shares  # type: ignore[attr-defined]


class DropoutTolerantSecAggPlus(SecAggPlusWorkflow):
    """SecAgg+ whose round survives losing clients at setup and share-keys."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        use_fast_combine()

    def setup_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        return _timed("setup", super().setup_stage, grid, context, state)

    def collect_masked_vectors_stage(
        self, grid: Grid, context: LegacyContext, state: WorkflowState
    ) -> bool:
        stage = super().collect_masked_vectors_stage
        return _timed("collect_masked_vectors", stage, grid, context, state)

    def unmask_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        return _timed("unmask", super().unmask_stage, grid, context, state)

    def share_keys_stage(self, grid: Grid, context: LegacyContext, state: WorkflowState) -> bool:
        ok = _timed("share_keys", super().share_keys_stage, grid, context, state)
        holders = set(state.active_node_ids)
        lost = state.sampled_node_ids - holders
        if lost:
            log.warning(
                "secure aggregation: %d client(s) did not share their keys (lost, or "
                "slower than secagg-timeout, %g s); the round goes on without them",
                len(lost),
                self.timeout,
            )
            # Only clients that distributed shares take part in masking from here on.
            state.sampled_node_ids = holders
            for nid in list(state.nid_to_neighbours):
                if nid in holders:
                    state.nid_to_neighbours[nid] &= holders
                else:
                    del state.nid_to_neighbours[nid]
        return ok
