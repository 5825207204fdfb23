"""The SecAgg+ workflow's reach into Flower: its unmask stage rebuilds secrets through
the module name fedssl points at ``common.shamir`` (fails loudly when Flower moves it)."""

from __future__ import annotations

import pytest
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.secure_aggregation import secaggplus_workflow

from common import shamir
from server.secagg_workflow import DropoutTolerantSecAggPlus


def test_flowers_unmask_stage_combines_through_the_module_name() -> None:
    assert "combine_shares" in SecAggPlusWorkflow.unmask_stage.__code__.co_names
    assert callable(secaggplus_workflow.combine_shares)


def test_the_workflow_uses_the_cached_combine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secaggplus_workflow, "combine_shares", lambda shares: b"")
    DropoutTolerantSecAggPlus(num_shares=3, reconstruction_threshold=2)
    assert secaggplus_workflow.combine_shares is shamir.combine_shares
