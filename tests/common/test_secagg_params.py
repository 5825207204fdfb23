"""SecAgg+ round parameters: the automatic neighbourhood, threshold and modulus."""

from __future__ import annotations

import pytest

from common.config import RunConfig
from common.config_checks import check_secagg_cohort
from common.config_values import ConfigError
from common.secagg_params import check_threshold, resolve_modulus, resolve_shares


@pytest.mark.parametrize(
    ("clients", "modulus"),
    [(3, 2**32), (1023, 2**32), (1024, 2**33), (1000, 2**32), (10_000, 2**36), (100_000, 2**39)],
)
def test_the_auto_modulus_is_the_smallest_that_holds_the_sum(clients: int, modulus: int) -> None:
    assert resolve_modulus(0, 2**22, clients) == modulus
    assert clients * 2**22 < modulus and (modulus == 2**32 or clients * 2**22 >= modulus // 2)
    cfg = RunConfig()  # modulus-range 0 = auto, quantization 2^22
    assert cfg.secagg_modulus(clients) == modulus
    check_secagg_cohort(cfg, clients)


def test_an_explicit_modulus_is_kept() -> None:
    assert resolve_modulus(2**40, 2**22, 3) == 2**40


# 2 * ceil(log2 n) + 1, capped at n and at least 3; threshold a majority (n // 2 + 1),
# below the neighbourhood size. Worked out by hand for each n.
@pytest.mark.parametrize(
    ("n", "shares", "threshold"),
    [(3, 3, 2), (4, 4, 3), (5, 5, 3), (10, 9, 5), (21, 11, 6), (100, 15, 8), (1000, 21, 11)],
)
def test_auto_shares_are_a_log_neighbourhood_with_a_majority(
    n: int, shares: int, threshold: int
) -> None:
    assert resolve_shares(0, 0, n) == (shares, threshold)
    assert RunConfig().secagg_shares(n) == (shares, threshold)
    check_threshold(shares, threshold)  # valid SecAgg+ parameters


def test_explicit_shares_and_threshold_are_kept() -> None:
    assert resolve_shares(7, 5, 100) == (7, 5)
    assert resolve_shares(7, 0, 100) == (7, 4)


@pytest.mark.parametrize(
    ("shares", "threshold", "words"), [(5, 5, "less than"), (11, 5, "majority")]
)
def test_a_threshold_that_is_too_high_or_a_minority_is_refused(
    shares: int, threshold: int, words: str
) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        check_threshold(shares, threshold)
    assert err.value.key == "reconstruction-threshold"
