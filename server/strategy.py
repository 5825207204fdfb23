"""Aggregation of encoder deltas: global += example-weighted mean delta.

Works unchanged under SecAgg+ (every result then carries the same, already
unmasked weighted mean) and plain FedAvg (each result carries its own delta).
It also records each round's outcome, because SecAgg+ aborts a round by simply
never calling ``aggregate_fit``; the round loop turns that silence into a record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
from flwr.common import (
    EvaluateIns,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg

from server.round_outcome import RoundOutcome

ROUND_KEY = "server-round"
log = logging.getLogger("fedssl.server")


class DeltaFedAvg(FedAvg):
    """FedAvg over deltas of the shared parameters, with the global model kept here."""

    def __init__(
        self,
        initial_arrays: list[np.ndarray],
        train_config: Mapping[str, Scalar],
        *,
        fraction_fit: float,
        min_available_clients: int,
        server_learning_rate: float = 1.0,
        server_momentum: float = 0.0,
    ) -> None:
        super().__init__(
            fraction_fit=fraction_fit,
            fraction_evaluate=0.0,
            min_fit_clients=min(2, min_available_clients),
            min_evaluate_clients=0,
            min_available_clients=min_available_clients,
            initial_parameters=ndarrays_to_parameters(initial_arrays),
            accept_failures=True,
        )
        self.global_arrays = [a.astype(np.float32, copy=True) for a in initial_arrays]
        self.server_learning_rate = server_learning_rate
        self.server_momentum = server_momentum
        # FedAvgM's velocity: it works on the aggregate only, so SecAgg+ is unaffected.
        self.velocity = [np.zeros(a.shape, dtype=np.float64) for a in initial_arrays]
        self.train_config = dict(train_config)
        self.outcome = RoundOutcome(round=0)

    def begin_round(self, server_round: int) -> None:
        self.outcome = RoundOutcome(round=server_round)

    def set_global(self, arrays: list[np.ndarray]) -> None:
        self.global_arrays = [a.astype(np.float32, copy=True) for a in arrays]

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        instructions = super().configure_fit(server_round, parameters, client_manager)
        config: dict[str, Scalar] = {**self.train_config, ROUND_KEY: server_round}
        out = [(proxy, FitIns(ins.parameters, dict(config))) for proxy, ins in instructions]
        self.outcome.clients_sampled = len(out)
        return out

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        out = self.outcome
        out.clients_aggregated = len(results)
        # Flower's SecAgg+ workflow may list one client's error twice and never lists
        # clients that timed out: count from what was sampled instead.
        out.clients_failed = max(out.clients_sampled - len(results), 0)
        out.failures = sorted({_describe(f) for f in failures})[:10]
        if not results:
            out.reason = "no client results to aggregate"
            return None, {}
        weights = np.array([res.num_examples for _, res in results], dtype=np.float64)
        deltas = [parameters_to_ndarrays(res.parameters) for _, res in results]
        mean = [
            sum(w * d[i].astype(np.float64) for w, d in zip(weights, deltas, strict=True))
            / weights.sum()
            for i in range(len(deltas[0]))
        ]
        if len(mean) != len(self.global_arrays):
            out.reason = f"aggregate has {len(mean)} arrays, expected {len(self.global_arrays)}"
            return None, {}
        if not all(np.isfinite(m).all() for m in mean):
            out.reason = "aggregate is not finite; previous global encoder kept"
            return None, {}
        step = [
            self.server_momentum * v + m.reshape(v.shape)
            for v, m in zip(self.velocity, mean, strict=True)
        ]
        new = [
            (g.astype(np.float64) + self.server_learning_rate * s).astype(np.float32)
            for g, s in zip(self.global_arrays, step, strict=True)
        ]
        self.velocity = step
        self.global_arrays = new
        losses = np.array([float(res.metrics.get("train-loss", np.nan)) for _, res in results])
        known = np.isfinite(losses)
        if known.any():
            out.train_loss = float(np.average(losses[known], weights=weights[known]))
        out.delta_norm = float(np.sqrt(sum(float((m**2).sum()) for m in mean)))
        out.clipped_values = int(
            sum(int(res.metrics.get("clipped-values", 0)) for _, res in results)
        )
        out.completed = True
        metrics: dict[str, Scalar] = {}
        if out.train_loss is not None:
            metrics["train-loss"] = out.train_loss
        return ndarrays_to_parameters(new), metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []


def _describe(failure: tuple[ClientProxy, FitRes] | BaseException) -> str:
    if isinstance(failure, BaseException):
        return f"{failure.__class__.__name__}: {failure}"[:300]
    proxy, res = failure
    return f"node {proxy.cid}: {res.status.message}"[:300]
