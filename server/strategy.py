"""Aggregation of encoder deltas: global += example-weighted mean delta.

Works unchanged under SecAgg+ (every result then carries the same, already
unmasked weighted mean) and plain FedAvg (each result carries its own delta).
It also records each round's outcome, because SecAgg+ aborts a round by simply
never calling ``aggregate_fit``; the round loop turns that silence into a record.

With central differential privacy on (DP-FedAvg, McMahan et al., ICLR 2018) every
client has clipped its delta to L2 norm C and counts equally, and this strategy adds
Gaussian noise to the aggregate, the only thing SecAgg+ lets it see, before the
server step, and accounts for the privacy spent (common/privacy).
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
from flwr.server.criterion import Criterion
from flwr.server.strategy import FedAvg

from common.messages import ROUND_KEY
from common.privacy.accountant import RdpPrivacyAccountant
from common.privacy.clipping import l2_norm
from common.privacy.noise import add_gaussian_noise, noise_std
from common.server_opt import ServerOptConfig, make_server_optimizer
from common.wire_vector import WireShapeError, flatten, single_vector, unflatten
from server.failures import describe_failure
from server.node_roles import NodeRoles, sample_nodes
from server.round_outcome import RoundOutcome

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
        server_opt: ServerOptConfig | None = None,
        max_update_ratio: float = 1.0,
        dp_noise_multiplier: float = 0.0,
        dp_clipping_norm: float = 0.0,
        dp_delta: float = 1e-5,
        dp_rng: np.random.Generator | None = None,
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
        self.max_update_ratio = max_update_ratio
        # It works on the aggregate only, so SecAgg+ is unaffected (common.server_opt).
        self.optimizer = make_server_optimizer(
            server_opt or ServerOptConfig(), [a.shape for a in initial_arrays]
        )
        self.train_config = dict(train_config)
        if dp_noise_multiplier > 0 and dp_clipping_norm <= 0:
            raise ValueError("DP noise needs a clipping norm > 0")
        self.dp_noise_multiplier = dp_noise_multiplier
        self.dp_clipping_norm = dp_clipping_norm
        self.accountant = (
            RdpPrivacyAccountant(dp_noise_multiplier, dp_delta) if dp_noise_multiplier > 0 else None
        )
        # Unseeded by default: noise that someone could regenerate from a known seed
        # could be subtracted again. Tests pass a seeded generator.
        self.dp_rng = dp_rng if dp_rng is not None else np.random.default_rng()
        self.outcome = RoundOutcome(round=0)
        self.roles: NodeRoles | None = None  # set by the run: which nodes train

    def begin_round(self, server_round: int) -> None:
        self.outcome = RoundOutcome(round=server_round)
        if self.dp_clipping_norm > 0:
            self.outcome.dp_clipped = 0
            self.outcome.dp_noise_std = 0.0  # until a noised aggregate is released
        if self.accountant is not None:
            self.outcome.dp_epsilon = self.accountant.epsilon

    def restore_privacy_spent(self, sampling_rates: list[float]) -> None:
        """On resume: compose the noised rounds the run released before it stopped."""
        if self.accountant is not None:
            for q in sampling_rates:
                self.accountant.spend_round(q)

    def set_global(self, arrays: list[np.ndarray]) -> None:
        self.global_arrays = [a.astype(np.float32, copy=True) for a in arrays]

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        # Sample among the nodes that train: evaluation-only nodes never get a fit message.
        trainers = _Trainers(self.roles)
        available = sum(1 for proxy in client_manager.all().values() if trainers.select(proxy))
        sample_size, min_num = self.num_fit_clients(available)
        client_manager.wait_for(min_num, timeout=86400)  # as Flower's own sampler does
        by_id = {int(p.cid): p for p in client_manager.all().values() if trainers.select(p)}
        if sample_size > len(by_id):  # too few trainers for a round: none is sampled
            sample_size = 0
        partitions = self.roles.partitions if self.roles is not None else {}
        # Under DP noise nobody may know who was sampled (server.node_roles).
        seed = None if self.accountant is not None else int(self.train_config.get("seed", 0))  # type: ignore[call-overload]
        picked = sample_nodes(list(by_id), sample_size, seed, server_round, partitions)
        sampled = [by_id[n] for n in picked]
        config: dict[str, Scalar] = {**self.train_config, ROUND_KEY: server_round}
        # The global weights travel as one vector (common.wire_vector), whatever the
        # workflow passed in ``parameters``.
        wire = ndarrays_to_parameters([flatten(self.global_arrays)])
        out = [(proxy, FitIns(wire, dict(config))) for proxy in sampled]
        self.outcome.clients_sampled = len(out)
        if self.dp_clipping_norm > 0 and out:
            # Each client's chance to be in this round: sampled / available (an upper
            # bound for every client of the population).
            self.outcome.dp_sampling_rate = len(out) / max(available, len(out))
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
        if self.dp_clipping_norm > 0:
            # DP: every clipped update counts equally (under SecAgg+ the clients already
            # weighted themselves equally; the aggregate is the same in every result).
            weights = np.ones(len(results), dtype=np.float64)
        try:
            mean = self._weighted_mean(results, weights)
        except WireShapeError as exc:
            out.reason = f"aggregate does not fit the global encoder: {exc}"
            return None, {}
        if not all(np.isfinite(m).all() for m in mean):
            out.reason = "aggregate is not finite; previous global encoder kept"
            return None, {}
        absurd = self._absurd(mean)
        if absurd:
            out.reason = absurd
            return None, {}
        if self.accountant is not None:
            mean = self._add_dp_noise(mean, len(results))
        new = self.optimizer.step(self.global_arrays, mean, server_round)
        self.global_arrays = new
        losses = np.array([float(res.metrics.get("train-loss", np.nan)) for _, res in results])
        known = np.isfinite(losses)
        if known.any():
            out.train_loss = float(np.average(losses[known], weights=weights[known]))
        out.delta_norm = l2_norm(mean)
        out.clipped_values = int(
            sum(int(res.metrics.get("clipped-values", 0)) for _, res in results)
        )
        if self.dp_clipping_norm > 0:
            out.dp_clipped = int(sum(int(res.metrics.get("dp-clipped", 0)) for _, res in results))
        out.completed = True
        metrics: dict[str, Scalar] = {}
        if out.train_loss is not None:
            metrics["train-loss"] = out.train_loss
        return ndarrays_to_parameters(new), metrics

    def _weighted_mean(
        self, results: list[tuple[ClientProxy, FitRes]], weights: np.ndarray
    ) -> list[np.ndarray]:
        """The weighted mean delta, decoding one result at a time into a float64 sum.

        Each distinct ``Parameters`` object is decoded once: Flower's SecAgg+ workflow
        puts the one unmasked aggregate into every result (decoding it per result took
        12 s at 1,000 clients). Plain FedAvg results are summed as they are decoded, so
        the server never holds a second copy of every client's update (7.4 GB at 10,000).
        """
        groups: dict[int, tuple[Parameters, float]] = {}
        for (_, res), w in zip(results, weights, strict=True):
            params, total = groups.get(id(res.parameters), (res.parameters, 0.0))
            groups[id(res.parameters)] = (params, total + float(w))
        total_sum: list[np.ndarray] | None = None
        for params, w in groups.values():
            delta = self._from_wire(params)
            if total_sum is None:
                total_sum = [np.zeros(d.shape, dtype=np.float64) for d in delta]
            for acc, d in zip(total_sum, delta, strict=True):
                acc += w * d.astype(np.float64)
        assert total_sum is not None  # results is not empty
        return [acc / weights.sum() for acc in total_sum]

    def _from_wire(self, parameters: Parameters) -> list[np.ndarray]:
        """A result's delta (one flat vector on the wire) in the global arrays' shapes."""
        vector = single_vector(parameters_to_ndarrays(parameters))
        return unflatten(vector, [a.shape for a in self.global_arrays])

    def _absurd(self, mean: list[np.ndarray]) -> str:
        """Why the aggregate is too large to be a training step ("" when it is not)."""
        if self.max_update_ratio <= 0:
            return ""
        norm, scale = l2_norm(mean), l2_norm(self.global_arrays)
        if norm <= self.max_update_ratio * max(scale, 1.0):
            return ""
        return (
            f"aggregate update has L2 norm {norm:.4g}, over max-update-ratio "
            f"{self.max_update_ratio:g} x the global encoder's {scale:.4g}; previous global "
            "encoder kept"
        )

    def _add_dp_noise(self, mean: list[np.ndarray], n_aggregated: int) -> list[np.ndarray]:
        """The fixed-denominator mean plus Gaussian noise; accounts for the release.

        DP-FedAvg's estimator sum / W with W the clients sampled this round, fixed
        before any client trained (McMahan et al. 2018, Alg. 1): its sensitivity to one
        client is C / W, so noise of std sigma * C / W is the Gaussian mechanism with
        multiplier sigma. With every sampled client in the sum, sum / W is the mean the
        workflow delivered, as in Flower's DifferentialPrivacyClientSideFixedClipping;
        if some dropped out, the mean over the survivors is scaled back to sum / W rather
        than noising it too little.
        """
        assert self.accountant is not None
        out = self.outcome
        sampled = max(out.clients_sampled, n_aggregated)
        std = noise_std(self.dp_noise_multiplier, self.dp_clipping_norm, sampled)
        fixed = [m * (n_aggregated / sampled) for m in mean]
        noised = add_gaussian_noise(fixed, std, self.dp_rng)
        out.dp_noise_std = std
        # Only a released aggregate costs privacy: a round that fails before this point
        # (SecAgg+ abort, no results, non-finite aggregate) publishes nothing.
        q = out.dp_sampling_rate if out.dp_sampling_rate is not None else 1.0
        out.dp_sampling_rate = q
        out.dp_epsilon = self.accountant.spend_round(q)
        return noised

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        return []


def _describe(failure: tuple[ClientProxy, FitRes] | BaseException) -> str:
    if isinstance(failure, BaseException):
        return describe_failure(f"{failure.__class__.__name__}: {failure}")
    proxy, res = failure
    return f"node {proxy.cid}: {describe_failure(res.status.message)}"


class _Trainers(Criterion):
    """A node trains unless it said it only evaluates."""

    def __init__(self, roles: NodeRoles | None) -> None:
        self.roles = roles

    def select(self, client: ClientProxy) -> bool:
        return self.roles is None or self.roles.trains(int(client.cid))
