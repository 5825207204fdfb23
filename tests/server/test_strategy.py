"""DeltaFedAvg: global += example-weighted mean delta; bad aggregates are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from strategy_results import client_manager, fit_result, plain_strategy


def test_aggregate_equals_weighted_mean_reference() -> None:
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
    deltas = [[rng.normal(size=a.shape).astype(np.float32) for a in init] for _ in range(3)]
    counts = [10, 30, 60]
    s = plain_strategy(init)
    params, metrics = s.aggregate_fit(
        1,
        [
            fit_result(d, n, loss)
            for d, n, loss in zip(deltas, counts, [1.0, 2.0, 3.0], strict=True)
        ],
        [],
    )
    assert params is not None
    new = parameters_to_ndarrays(params)
    for i, g in enumerate(init):
        ref = g + sum(n * d[i] for d, n in zip(deltas, counts, strict=True)) / sum(counts)
        np.testing.assert_allclose(new[i], ref, atol=1e-6)
    assert abs(metrics["train-loss"] - (10 * 1 + 30 * 2 + 60 * 3) / 100) < 1e-9
    assert s.outcome.completed and s.outcome.clients_aggregated == 3


def test_a_shared_secagg_aggregate_is_decoded_once_and_applied_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Flower's SecAgg+ workflow hands every result the same unmasked aggregate object,
    # beside results that carry their own (a mix never happens, but must still add up).
    rng = np.random.default_rng(1)
    init = [rng.normal(size=(4, 3)).astype(np.float32)]
    shared, own = ([rng.normal(size=(4, 3)).astype(np.float32)] for _ in range(2))
    results = [fit_result(shared, 10, 1.0) for _ in range(4)]
    for _, fitres in results[1:]:
        fitres.parameters = results[0][1].parameters
    results.append(fit_result(own, 60, 1.0))
    s = plain_strategy(init)
    decoded = 0
    original = s._from_wire

    def counting(parameters: Any) -> list[np.ndarray]:
        nonlocal decoded
        decoded += 1
        return original(parameters)

    monkeypatch.setattr(s, "_from_wire", counting)
    params, _ = s.aggregate_fit(1, results, [])
    assert params is not None and decoded == 2
    ref = init[0] + (40 * shared[0] + 60 * own[0]) / 100
    np.testing.assert_allclose(parameters_to_ndarrays(params)[0], ref, atol=1e-6)


def test_non_finite_aggregate_keeps_previous_global() -> None:
    init = [np.ones(4, dtype=np.float32)]
    s = plain_strategy(init)
    bad = [np.array([0.0, np.nan, 0.0, 0.0], dtype=np.float32)]
    params, _ = s.aggregate_fit(
        1, [fit_result(bad, 5, 1.0), fit_result([np.zeros(4, np.float32)], 5, 1.0)], []
    )
    assert params is None
    assert not s.outcome.completed and "not finite" in s.outcome.reason
    np.testing.assert_array_equal(s.global_arrays[0], init[0])


def test_round_with_no_results_is_not_completed() -> None:
    s = plain_strategy([np.zeros(2, dtype=np.float32)])
    s.outcome.clients_sampled = 1  # what configure_fit recorded
    params, _ = s.aggregate_fit(1, [], [RuntimeError("client died")])
    assert params is None
    assert not s.outcome.completed and s.outcome.clients_failed == 1
    assert "client died" in s.outcome.failures[0]


def test_failed_clients_are_counted_from_the_sample_not_the_error_list() -> None:
    """Flower's SecAgg+ workflow can list one client's error twice and omits timeouts."""
    s = plain_strategy([np.zeros(2, dtype=np.float32)])
    s.outcome.clients_sampled = 4
    ok = [fit_result([np.ones(2, dtype=np.float32)], 5, 1.0) for _ in range(2)]
    dup = RuntimeError("node 3 died")
    s.aggregate_fit(1, ok, [dup, dup])
    assert s.outcome.completed and s.outcome.clients_failed == 2
    assert s.outcome.failures == ["RuntimeError: node 3 died"]


def test_absurd_aggregate_is_refused_and_the_previous_global_kept() -> None:
    init = [np.full(100, 0.1, dtype=np.float32)]  # L2 norm 1.0
    s = plain_strategy(init, max_update_ratio=1.0)  # the default of RunConfig
    huge = [np.full(100, 0.5, dtype=np.float32)]  # norm 5: five times the model itself
    params, _ = s.aggregate_fit(1, [fit_result(huge, 5, 1.0), fit_result(huge, 5, 1.0)], [])
    assert params is None and not s.outcome.completed
    assert "max-update-ratio" in s.outcome.reason
    np.testing.assert_array_equal(s.global_arrays[0], init[0])
    # A step of the usual size (a few per cent of the model) goes through.
    s.begin_round(2)
    small = [np.full(100, 0.003, dtype=np.float32)]
    params, _ = s.aggregate_fit(2, [fit_result(small, 5, 1.0), fit_result(small, 5, 1.0)], [])
    assert params is not None and s.outcome.completed


def test_results_that_do_not_fit_the_global_shapes_are_refused_by_name() -> None:
    init = [np.zeros((2, 3), np.float32), np.zeros(4, np.float32)]
    s = plain_strategy(init)
    short = fit_result([np.ones(9, np.float32)], 5, 1.0)  # 9 values; the model has 10
    params, _ = s.aggregate_fit(1, [short, short], [])
    assert params is None and not s.outcome.completed
    assert "9 values" in s.outcome.reason and "need 10" in s.outcome.reason
    several = FitRes(Status(Code.OK, "OK"), ndarrays_to_parameters(init), 5, {})
    params, _ = s.aggregate_fit(1, [(None, several)], [])  # type: ignore[list-item]
    assert params is None and "one flat vector, got 2 arrays" in s.outcome.reason


def test_training_messages_carry_the_global_weights_as_one_vector() -> None:
    init = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7.0, 8.0], np.float32)]
    s = plain_strategy(init)
    sent = s.configure_fit(1, ndarrays_to_parameters(init), client_manager(3))
    (vector,) = parameters_to_ndarrays(sent[0][1].parameters)
    np.testing.assert_array_equal(vector, [0, 1, 2, 3, 4, 5, 7, 8])
