"""The RDP accountant wrapper: the same epsilon as dp_accounting computed directly,
growing with the rounds, falling with the noise and with sampling."""

from __future__ import annotations

import logging
import math

import dp_accounting
import pytest
from dp_accounting.rdp import RdpAccountant

from common.privacy.accountant import RdpPrivacyAccountant


def _direct(sigma: float, q: float, rounds: int, delta: float) -> float:
    acc = RdpAccountant()
    acc.compose(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), rounds
    )
    return float(acc.get_epsilon(delta))


@pytest.mark.parametrize(("sigma", "q"), [(1.0, 1.0), (0.7, 0.3), (3.0, 21 / 30)])
def test_epsilon_equals_a_direct_dp_accounting_computation(sigma: float, q: float) -> None:
    acc = RdpPrivacyAccountant(sigma, 1e-5)
    assert acc.epsilon == 0.0  # nothing released yet
    for r in range(1, 6):
        eps = acc.spend_round(q)
        assert eps == pytest.approx(_direct(sigma, q, r, 1e-5), rel=1e-9)
    assert acc.rounds == 5


def test_epsilon_grows_with_rounds_and_falls_with_noise_and_sampling() -> None:
    def after(sigma: float, q: float, rounds: int) -> float:
        acc = RdpPrivacyAccountant(sigma, 1e-5)
        for _ in range(rounds):
            acc.spend_round(q)
        return acc.epsilon

    by_round = [after(1.0, 1.0, r) for r in (1, 2, 5, 15)]
    assert by_round == sorted(by_round) and len(set(by_round)) == 4
    by_sigma = [after(s, 1.0, 15) for s in (0.5, 1.0, 2.0, 4.0)]
    assert by_sigma == sorted(by_sigma, reverse=True) and len(set(by_sigma)) == 4
    assert after(1.0, 0.1, 15) < after(1.0, 1.0, 15)  # amplification by sampling
    # One Gaussian release with sigma = 1 at delta 1e-5 is well known to be a few epsilon.
    assert 3.0 < after(1.0, 1.0, 1) < 6.0
    assert math.isfinite(after(0.3, 1.0, 15))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="noise_multiplier"):
        RdpPrivacyAccountant(0.0, 1e-5)
    with pytest.raises(ValueError, match="delta"):
        RdpPrivacyAccountant(1.0, 1.5)
    with pytest.raises(ValueError, match="sampling_rate"):
        RdpPrivacyAccountant(1.0, 1e-5).spend_round(0.0)


def test_small_sigma_with_sampling_leaves_no_library_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # dp-accounting warns through absl for each Renyi order it drops at small sigma.
    caplog.set_level(logging.WARNING)
    acc = RdpPrivacyAccountant(0.5, 1e-5)
    eps = [acc.spend_round(0.5) for _ in range(3)]
    assert eps[0] < eps[1] < eps[2] < math.inf
    assert not [r for r in caplog.records if r.name == "absl"]
