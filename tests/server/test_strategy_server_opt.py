"""DeltaFedAvg's server step on the mean delta: FedAvgM, the cosine step, FedAdam, FedYogi."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_results import fit_result

from common.config import ConfigError, RunConfig
from common.server_opt import ServerOptConfig
from server.strategy import DeltaFedAvg


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
    s.aggregate_fit(1, [fit_result([d], 4, 1.0), fit_result([d], 6, 1.0)], [])
    np.testing.assert_allclose(s.global_arrays[0], 2.0 * d, atol=1e-6)  # v1 = d
    s.begin_round(2)
    s.aggregate_fit(2, [fit_result([d], 4, 1.0), fit_result([d], 6, 1.0)], [])
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
        s.aggregate_fit(rnd, [fit_result([d], 4, 1.0), fit_result([d], 6, 1.0)], [])
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
        s.aggregate_fit(rnd, [fit_result([(d - 0.01).astype(np.float32)], 5, 1.0),
                              fit_result([(d + 0.01).astype(np.float32)], 5, 1.0)], [])  # fmt: skip
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
