"""DeltaFedAvg under central DP: clipped equal-weight mean, calibrated noise, the privacy spend."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from strategy_results import client_manager, fit_result, plain_strategy

from common.wire_vector import flatten
from server.node_roles import NodeRoles
from server.strategy import DeltaFedAvg


def _dp_strategy(
    init: list[np.ndarray], sigma: float, clip: float, seed: int = 0, **kw: float
) -> DeltaFedAvg:
    return DeltaFedAvg(
        init,
        {},
        max_update_ratio=0.0,
        fraction_fit=1.0,
        min_available_clients=3,
        dp_noise_multiplier=sigma,
        dp_clipping_norm=clip,
        dp_delta=1e-5,
        dp_rng=np.random.default_rng(seed),
        **kw,
    )


def _dp_res(delta: list[np.ndarray], n: int, clipped: int) -> tuple[None, FitRes]:
    metrics = {"train-loss": 1.0, "dp-clipped": clipped}
    return None, FitRes(Status(Code.OK, "OK"), ndarrays_to_parameters([flatten(delta)]), n, metrics)


def test_dp_adds_seeded_noise_of_std_sigma_c_over_n_to_the_equal_weighted_mean() -> None:
    from common.privacy.accountant import RdpPrivacyAccountant

    rng = np.random.default_rng(0)
    init = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
    deltas = [[rng.normal(size=a.shape).astype(np.float32) for a in init] for _ in range(3)]
    sigma, clip = 0.5, 2.0
    s = _dp_strategy(init, sigma, clip, seed=7)
    s.begin_round(1)
    s.outcome.clients_sampled = 3
    # Different example counts must not matter: DP-FedAvg weighs clipped updates equally.
    results = [_dp_res(d, n, c) for d, n, c in zip(deltas, [10, 30, 60], [1, 0, 1], strict=True)]
    params, _ = s.aggregate_fit(1, results, [])
    assert params is not None
    std = sigma * clip / 3
    expected_noise = np.random.default_rng(7)  # the same draws, in the same order
    for i, g in enumerate(init):
        mean = sum(d[i].astype(np.float64) for d in deltas) / 3
        ref = g + mean + expected_noise.normal(0.0, std, size=g.shape)
        np.testing.assert_allclose(parameters_to_ndarrays(params)[i], ref, atol=1e-5)
    out = s.outcome
    assert out.completed and out.dp_clipped == 2
    assert out.dp_noise_std == pytest.approx(std) and out.dp_sampling_rate == 1.0
    direct = RdpPrivacyAccountant(sigma, 1e-5)
    assert out.dp_epsilon == pytest.approx(direct.spend_round(1.0))


def test_dp_noise_has_the_calibrated_std_and_epsilon_grows_per_released_round() -> None:
    init = [np.zeros(200_000, dtype=np.float32)]
    zero = [np.zeros(200_000, dtype=np.float32)]
    s = _dp_strategy(init, sigma=1.3, clip=0.6, seed=1)
    eps = []
    for rnd in (1, 2, 3):
        before = s.global_arrays[0].astype(np.float64)
        s.begin_round(rnd)
        s.outcome.clients_sampled = 4
        s.aggregate_fit(rnd, [_dp_res(zero, 5, 0) for _ in range(4)], [])
        step = s.global_arrays[0].astype(np.float64) - before
        std = 1.3 * 0.6 / 4
        assert abs(step.std() / std - 1.0) < 5 / np.sqrt(2 * step.size)
        assert abs(step.mean()) < 5 * std / np.sqrt(step.size)
        eps.append(s.outcome.dp_epsilon)
    assert eps == sorted(eps) and len(set(eps)) == 3


def test_dp_fixed_denominator_when_clients_drop_out() -> None:
    """3 of 4 sampled clients in the sum: the release is sum / 4 + N(0, (sigma C / 4)^2)."""
    init = [np.zeros(50_000, dtype=np.float32)]
    d = [np.full(50_000, 0.2, dtype=np.float32)]
    s = _dp_strategy(init, sigma=0.4, clip=1.0, seed=2)
    s.begin_round(1)
    s.outcome.clients_sampled = 4
    s.aggregate_fit(1, [_dp_res(d, 5, 0) for _ in range(3)], [RuntimeError("lost")])
    step = s.global_arrays[0].astype(np.float64)
    assert s.outcome.dp_noise_std == pytest.approx(0.4 / 4)
    assert step.mean() == pytest.approx(0.2 * 3 / 4, abs=5 * 0.1 / np.sqrt(step.size))
    assert step.std() == pytest.approx(0.1, rel=5 / np.sqrt(2 * step.size))


def test_failed_rounds_spend_no_privacy() -> None:
    init = [np.zeros(3, dtype=np.float32)]
    s = _dp_strategy(init, sigma=1.0, clip=1.0)
    ok = [_dp_res([np.ones(3, dtype=np.float32)], 5, 0) for _ in range(3)]
    s.begin_round(1)
    s.aggregate_fit(1, ok, [])
    eps1 = s.outcome.dp_epsilon
    assert eps1 is not None and eps1 > 0
    s.begin_round(2)  # SecAgg+ aborted: aggregate_fit is never called
    assert s.outcome.dp_epsilon == eps1 and s.outcome.dp_noise_std == 0.0
    s.begin_round(3)  # no results
    s.aggregate_fit(3, [], [RuntimeError("all lost")])
    assert s.outcome.dp_epsilon == eps1 and not s.outcome.completed
    s.begin_round(4)  # a non-finite aggregate is refused before any noise is released
    bad = [_dp_res([np.array([np.nan, 0, 0], dtype=np.float32)], 5, 0) for _ in range(3)]
    s.aggregate_fit(4, bad, [])
    assert s.outcome.dp_epsilon == eps1 and s.accountant is not None and s.accountant.rounds == 1
    s.begin_round(5)
    s.aggregate_fit(5, ok, [])
    assert s.outcome.dp_epsilon > eps1 and s.accountant.rounds == 2


def test_dp_sampling_rate_is_sampled_over_available_and_resume_restores_the_spend() -> None:
    init = [np.zeros(3, dtype=np.float32)]
    s = _dp_strategy(init, sigma=1.0, clip=1.0)
    s.fraction_fit = 0.5
    s.begin_round(1)
    s.configure_fit(1, ndarrays_to_parameters(init), client_manager(10))
    assert s.outcome.clients_sampled == 5 and s.outcome.dp_sampling_rate == 0.5
    s.aggregate_fit(1, [_dp_res([np.ones(3, dtype=np.float32)], 5, 0) for _ in range(5)], [])
    resumed = _dp_strategy(init, sigma=1.0, clip=1.0)
    resumed.restore_privacy_spent([0.5])
    resumed.begin_round(2)
    assert resumed.outcome.dp_epsilon == pytest.approx(s.outcome.dp_epsilon)


def test_clipping_without_noise_claims_no_epsilon() -> None:
    init = [np.zeros(3, dtype=np.float32)]
    s = _dp_strategy(init, sigma=0.0, clip=1.0)
    d = np.array([0.3, 0.0, 0.0], dtype=np.float32)
    s.begin_round(1)
    s.aggregate_fit(1, [_dp_res([d], 5, 1), _dp_res([2 * d], 50, 0)], [])
    np.testing.assert_allclose(s.global_arrays[0], 1.5 * d, atol=1e-7)  # equal weights, no noise
    assert s.accountant is None and s.outcome.dp_epsilon is None and s.outcome.dp_clipped == 1


def test_clipped_values_are_summed_over_the_round() -> None:
    init = [np.zeros(3, dtype=np.float32)]
    s = plain_strategy(init)
    results = []
    for clipped in (0, 5, 7):
        _, res = fit_result([np.ones(3, np.float32)], 10, 1.0)
        res.metrics["clipped-values"] = clipped
        results.append((None, res))
    s.aggregate_fit(1, results, [])
    assert s.outcome.completed and s.outcome.clipped_values == 12


def test_evaluation_only_nodes_are_never_sampled_for_training() -> None:
    init = [np.zeros(3, dtype=np.float32)]
    s = _dp_strategy(init, sigma=1.0, clip=1.0)
    roles = NodeRoles({})
    roles.roles.update({8: "evaluate", 9: "evaluate", 10: "evaluate", 1: "train"})
    s.roles = roles
    for rnd in range(1, 6):
        s.begin_round(rnd)
        sampled = s.configure_fit(rnd, ndarrays_to_parameters(init), client_manager(10))
        assert sorted(int(p.cid) for p, _ in sampled) == list(range(1, 8))  # unknown ones train
        assert s.outcome.clients_sampled == 7 and s.outcome.dp_sampling_rate == 1.0
