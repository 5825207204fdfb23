"""DeltaFedAvg: global += example-weighted mean delta; bad aggregates are refused."""

from __future__ import annotations

import numpy as np
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

from server.strategy import DeltaFedAvg


def _res(delta: list[np.ndarray], n: int, loss: float) -> tuple[None, FitRes]:
    fitres = FitRes(Status(Code.OK, "OK"), ndarrays_to_parameters(delta), n, {"train-loss": loss})
    return None, fitres  # the proxy is not used by aggregation


def _strategy(init: list[np.ndarray]) -> DeltaFedAvg:
    s = DeltaFedAvg(init, {}, fraction_fit=1.0, min_available_clients=3)
    s.begin_round(1)
    return s


def test_aggregate_equals_weighted_mean_reference() -> None:
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
    deltas = [[rng.normal(size=a.shape).astype(np.float32) for a in init] for _ in range(3)]
    counts = [10, 30, 60]
    s = _strategy(init)
    params, metrics = s.aggregate_fit(
        1,
        [_res(d, n, loss) for d, n, loss in zip(deltas, counts, [1.0, 2.0, 3.0], strict=True)],
        [],
    )
    assert params is not None
    new = parameters_to_ndarrays(params)
    for i, g in enumerate(init):
        ref = g + sum(n * d[i] for d, n in zip(deltas, counts, strict=True)) / sum(counts)
        np.testing.assert_allclose(new[i], ref, atol=1e-6)
    assert abs(metrics["train-loss"] - (10 * 1 + 30 * 2 + 60 * 3) / 100) < 1e-9
    assert s.outcome.completed and s.outcome.clients_aggregated == 3


def test_non_finite_aggregate_keeps_previous_global() -> None:
    init = [np.ones(4, dtype=np.float32)]
    s = _strategy(init)
    bad = [np.array([0.0, np.nan, 0.0, 0.0], dtype=np.float32)]
    params, _ = s.aggregate_fit(1, [_res(bad, 5, 1.0), _res([np.zeros(4, np.float32)], 5, 1.0)], [])
    assert params is None
    assert not s.outcome.completed and "not finite" in s.outcome.reason
    np.testing.assert_array_equal(s.global_arrays[0], init[0])


def test_round_with_no_results_is_not_completed() -> None:
    s = _strategy([np.zeros(2, dtype=np.float32)])
    s.outcome.clients_sampled = 1  # what configure_fit recorded
    params, _ = s.aggregate_fit(1, [], [RuntimeError("client died")])
    assert params is None
    assert not s.outcome.completed and s.outcome.clients_failed == 1
    assert "client died" in s.outcome.failures[0]


def test_failed_clients_are_counted_from_the_sample_not_the_error_list() -> None:
    """Flower's SecAgg+ workflow can list one client's error twice and omits timeouts."""
    s = _strategy([np.zeros(2, dtype=np.float32)])
    s.outcome.clients_sampled = 4
    ok = [_res([np.ones(2, dtype=np.float32)], 5, 1.0) for _ in range(2)]
    dup = RuntimeError("node 3 died")
    s.aggregate_fit(1, ok, [dup, dup])
    assert s.outcome.completed and s.outcome.clients_failed == 2
    assert s.outcome.failures == ["RuntimeError: node 3 died"]


def test_server_momentum_and_learning_rate_follow_fedavgm() -> None:
    init = [np.zeros(3, dtype=np.float32)]
    s = DeltaFedAvg(
        init,
        {},
        fraction_fit=1.0,
        min_available_clients=2,
        server_learning_rate=2.0,
        server_momentum=0.5,
    )
    d = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    s.begin_round(1)
    s.aggregate_fit(1, [_res([d], 4, 1.0), _res([d], 6, 1.0)], [])
    np.testing.assert_allclose(s.global_arrays[0], 2.0 * d, atol=1e-6)  # v1 = d
    s.begin_round(2)
    s.aggregate_fit(2, [_res([d], 4, 1.0), _res([d], 6, 1.0)], [])
    np.testing.assert_allclose(s.global_arrays[0], 2.0 * d + 2.0 * 1.5 * d, atol=1e-6)  # v2 = 1.5 d
