"""DeltaFedAvg: global += example-weighted mean delta; bad aggregates are refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy

from common.config import ConfigError, RunConfig
from common.server_opt import ServerOptConfig
from common.wire_vector import flatten
from server.node_roles import NodeRoles
from server.strategy import DeltaFedAvg


def _res(delta: list[np.ndarray], n: int, loss: float) -> tuple[None, FitRes]:
    wire = ndarrays_to_parameters([flatten(delta)])  # what a client sends: one vector
    fitres = FitRes(Status(Code.OK, "OK"), wire, n, {"train-loss": loss})
    return None, fitres  # the proxy is not used by aggregation


def _strategy(init: list[np.ndarray], max_update_ratio: float = 0.0) -> DeltaFedAvg:
    # Toy models start at or near zero: no size limit unless a test is about it.
    s = DeltaFedAvg(
        init, {}, fraction_fit=1.0, min_available_clients=3, max_update_ratio=max_update_ratio
    )
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


def test_a_shared_secagg_aggregate_is_decoded_once_and_applied_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Flower's SecAgg+ workflow hands every result the same unmasked aggregate object,
    # beside results that carry their own (a mix never happens, but must still add up).
    rng = np.random.default_rng(1)
    init = [rng.normal(size=(4, 3)).astype(np.float32)]
    shared, own = ([rng.normal(size=(4, 3)).astype(np.float32)] for _ in range(2))
    results = [_res(shared, 10, 1.0) for _ in range(4)]
    for _, fitres in results[1:]:
        fitres.parameters = results[0][1].parameters
    results.append(_res(own, 60, 1.0))
    s = _strategy(init)
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
        max_update_ratio=0.0,
        fraction_fit=1.0,
        min_available_clients=2,
        server_opt=ServerOptConfig("fedavg", lr=2.0, momentum=0.5),
    )
    d = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    s.begin_round(1)
    s.aggregate_fit(1, [_res([d], 4, 1.0), _res([d], 6, 1.0)], [])
    np.testing.assert_allclose(s.global_arrays[0], 2.0 * d, atol=1e-6)  # v1 = d
    s.begin_round(2)
    s.aggregate_fit(2, [_res([d], 4, 1.0), _res([d], 6, 1.0)], [])
    np.testing.assert_allclose(s.global_arrays[0], 2.0 * d + 2.0 * 1.5 * d, atol=1e-6)  # v2 = 1.5 d


def test_server_step_decays_by_cosine_from_first_to_final_round() -> None:
    init = [np.zeros(1, dtype=np.float32)]
    cfg = ServerOptConfig("fedavg", lr=2.0, lr_final=1.0, rounds=5)
    s = DeltaFedAvg(init, {}, max_update_ratio=0.0, fraction_fit=1.0, min_available_clients=2,
                    server_opt=cfg)  # fmt: skip
    d = np.array([1.0], dtype=np.float32)
    x = 0.0
    for rnd in range(1, 6):
        s.begin_round(rnd)
        s.aggregate_fit(rnd, [_res([d], 4, 1.0), _res([d], 6, 1.0)], [])
        x += 1.0 + 0.5 * (1 + np.cos(np.pi * (rnd - 1) / 4))  # 2, 1.85, 1.5, 1.15, 1
        np.testing.assert_allclose(s.global_arrays[0], [x], rtol=1e-6)
    assert s.optimizer.lr == pytest.approx(1.0)
    assert ServerOptConfig("fedavg", lr=2.0).round_lr(3) == 2.0  # no final: constant


def test_default_server_steps_resolve_per_optimizer() -> None:
    from common.server_opt import make_server_optimizer

    fedavg = make_server_optimizer(ServerOptConfig("fedavg", lr=0.0, rounds=6), [(1,)]).cfg
    assert (fedavg.lr, fedavg.lr_final) == (2.0, 1.0)  # from 2 down to plain FedAvg
    plain = make_server_optimizer(ServerOptConfig("fedavg", lr=1.0, rounds=6), [(1,)]).cfg
    assert [plain.round_lr(r) for r in range(1, 7)] == [1.0] * 6
    adam = make_server_optimizer(ServerOptConfig("fedadam", rounds=6, lr=0.0), [(1,)]).cfg
    assert [adam.round_lr(r) for r in (1, 6)] == [0.01, 0.01]  # constant


def test_fedadam_steps_on_the_aggregate_as_reddi_et_al_write_it() -> None:
    init = [np.full(2, 0.5, dtype=np.float32)]
    cfg = ServerOptConfig("fedadam", lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3)
    s = DeltaFedAvg(init, {}, max_update_ratio=0.0, fraction_fit=1.0, min_available_clients=2,
                    server_opt=cfg)  # fmt: skip
    deltas = [np.array([0.02, -0.01]), np.array([0.0, 0.03])]
    x, m, v = np.full(2, 0.5), np.zeros(2), np.zeros(2)
    for rnd, d in enumerate(deltas, 1):
        s.begin_round(rnd)
        # two clients of equal weight whose mean is d
        s.aggregate_fit(rnd, [_res([(d - 0.01).astype(np.float32)], 5, 1.0),
                              _res([(d + 0.01).astype(np.float32)], 5, 1.0)], [])  # fmt: skip
        m = 0.9 * m + 0.1 * d
        v = 0.99 * v + 0.01 * d * d
        x = x + 0.1 * m / (np.sqrt(v) + 1e-3)
        np.testing.assert_allclose(s.global_arrays[0], x, rtol=1e-5)


def test_fedyogi_grows_its_second_moment_additively() -> None:
    from common.server_opt import FedYogi

    opt = FedYogi(ServerOptConfig("fedyogi", lr=1.0, beta1=0.0, beta2=0.9, tau=0.0), [(1,)])
    d = np.array([2.0])
    opt.step([np.zeros(1, np.float32)], [d])  # v: 0 - 0.1 * 4 * sign(0 - 4) = 0.4
    assert opt.second[0][0] == pytest.approx(0.4)
    opt.step([np.zeros(1, np.float32)], [np.array([0.1])])  # v > d^2: v - 0.1 * 0.01
    assert opt.second[0][0] == pytest.approx(0.4 - 0.001)


def test_an_unknown_server_optimizer_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="server-optimizer"):
        RunConfig.from_flat({"server-optimizer": "fedsgd"})


# ---- central differential privacy -----------------------------------------------------


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
    s.configure_fit(1, ndarrays_to_parameters(init), _manager(10))
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
    s = _strategy(init)
    results = []
    for clipped in (0, 5, 7):
        _, res = _res([np.ones(3, np.float32)], 10, 1.0)
        res.metrics["clipped-values"] = clipped
        results.append((None, res))
    s.aggregate_fit(1, results, [])
    assert s.outcome.completed and s.outcome.clipped_values == 12


def test_absurd_aggregate_is_refused_and_the_previous_global_kept() -> None:
    init = [np.full(100, 0.1, dtype=np.float32)]  # L2 norm 1.0
    s = _strategy(init, max_update_ratio=1.0)  # the default of RunConfig
    huge = [np.full(100, 0.5, dtype=np.float32)]  # norm 5: five times the model itself
    params, _ = s.aggregate_fit(1, [_res(huge, 5, 1.0), _res(huge, 5, 1.0)], [])
    assert params is None and not s.outcome.completed
    assert "max-update-ratio" in s.outcome.reason
    np.testing.assert_array_equal(s.global_arrays[0], init[0])
    # A step of the usual size (a few per cent of the model) goes through.
    s.begin_round(2)
    small = [np.full(100, 0.003, dtype=np.float32)]
    params, _ = s.aggregate_fit(2, [_res(small, 5, 1.0), _res(small, 5, 1.0)], [])
    assert params is not None and s.outcome.completed


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


def _manager(n: int) -> SimpleClientManager:
    manager = SimpleClientManager()
    for node in range(1, n + 1):
        manager.register(_Proxy(str(node)))
    return manager


def test_evaluation_only_nodes_are_never_sampled_for_training() -> None:
    init = [np.zeros(3, dtype=np.float32)]
    s = _dp_strategy(init, sigma=1.0, clip=1.0)
    roles = NodeRoles({})
    roles.roles.update({8: "evaluate", 9: "evaluate", 10: "evaluate", 1: "train"})
    s.roles = roles
    for rnd in range(1, 6):
        s.begin_round(rnd)
        sampled = s.configure_fit(rnd, ndarrays_to_parameters(init), _manager(10))
        assert sorted(int(p.cid) for p, _ in sampled) == list(range(1, 8))  # unknown ones train
        assert s.outcome.clients_sampled == 7 and s.outcome.dp_sampling_rate == 1.0


def test_results_that_do_not_fit_the_global_shapes_are_refused_by_name() -> None:
    init = [np.zeros((2, 3), np.float32), np.zeros(4, np.float32)]
    s = _strategy(init)
    short = _res([np.ones(9, np.float32)], 5, 1.0)  # 9 values; the model has 10
    params, _ = s.aggregate_fit(1, [short, short], [])
    assert params is None and not s.outcome.completed
    assert "9 values" in s.outcome.reason and "need 10" in s.outcome.reason
    several = FitRes(Status(Code.OK, "OK"), ndarrays_to_parameters(init), 5, {})
    params, _ = s.aggregate_fit(1, [(None, several)], [])  # type: ignore[list-item]
    assert params is None and "one flat vector, got 2 arrays" in s.outcome.reason


def test_training_messages_carry_the_global_weights_as_one_vector() -> None:
    init = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([7.0, 8.0], np.float32)]
    s = _strategy(init)
    sent = s.configure_fit(1, ndarrays_to_parameters(init), _manager(3))
    (vector,) = parameters_to_ndarrays(sent[0][1].parameters)
    np.testing.assert_array_equal(vector, [0, 1, 2, 3, 4, 5, 7, 8])
