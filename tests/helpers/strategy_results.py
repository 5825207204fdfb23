"""Fit results and a DeltaFedAvg for strategy tests, built as a round delivers them."""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy

from common.wire_vector import flatten
from server.strategy import DeltaFedAvg


def fit_result(delta: list[np.ndarray], n: int, loss: float) -> tuple[None, FitRes]:
    """A client's reply: its delta as one wire vector, ``n`` examples, its train loss."""
    wire = ndarrays_to_parameters([flatten(delta)])  # what a client sends: one vector
    fitres = FitRes(Status(Code.OK, "OK"), wire, n, {"train-loss": loss})
    return None, fitres  # the proxy is not used by aggregation


def plain_strategy(init: list[np.ndarray], max_update_ratio: float = 0.0) -> DeltaFedAvg:
    """A DeltaFedAvg in round 1; toy models start near zero, so no size limit by default."""
    s = DeltaFedAvg(
        init, {}, fraction_fit=1.0, min_available_clients=3, max_update_ratio=max_update_ratio
    )
    s.begin_round(1)
    return s


class _Proxy(ClientProxy):
    """A connected node as the client manager holds it (nothing is ever sent to it here)."""

    def get_properties(self, *a: object, **k: object) -> Any:
        raise NotImplementedError

    def get_parameters(self, *a: object, **k: object) -> Any:
        raise NotImplementedError

    def fit(self, *a: object, **k: object) -> Any:
        raise NotImplementedError

    def evaluate(self, *a: object, **k: object) -> Any:
        raise NotImplementedError

    def reconnect(self, *a: object, **k: object) -> Any:
        raise NotImplementedError


def client_manager(n: int) -> SimpleClientManager:
    """``n`` connected nodes with ids 1..n, as the server's client manager holds them."""
    manager = SimpleClientManager()
    for node in range(1, n + 1):
        manager.register(_Proxy(str(node)))
    return manager
