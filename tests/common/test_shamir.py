"""Shamir reconstruction for SecAgg+ against Flower's and pycryptodome's own."""

from __future__ import annotations

import os
import random

import pytest
from Crypto.Protocol.SecretSharing import _Element
from flwr.common.secure_aggregation.crypto.shamir import combine_shares as flower_combine
from flwr.common.secure_aggregation.crypto.shamir import create_shares

from common.shamir import combine_shares, gf_inverse, gf_mul, lagrange_at_zero


def test_field_arithmetic_matches_pycryptodome() -> None:
    rng = random.Random(0)
    for _ in range(200):
        a, b = rng.getrandbits(128), rng.getrandbits(128)
        assert gf_mul(a, b) == int(_Element(a) * _Element(b))
    for a in (1, 2, 0x87, rng.getrandbits(128)):
        assert gf_mul(a, gf_inverse(a)) == 1
    with pytest.raises(ZeroDivisionError):
        gf_inverse(0)


@pytest.mark.parametrize("seed", range(6))
def test_secrets_from_flowers_shares_come_back_as_flower_rebuilds_them(seed: int) -> None:
    rng = random.Random(seed)
    for size in (1, 15, 16, 17, 32, 33):  # SecAgg+ shares 32-byte keys and seeds
        n = rng.randint(3, 25)
        t = rng.randint(2, n)
        secret = os.urandom(size)
        shares = create_shares(secret, t, n)
        subset = rng.sample(shares, rng.randint(t, n))  # any order, at least t of them
        assert combine_shares(subset) == secret == flower_combine(subset)


def test_too_few_or_inconsistent_shares_are_refused_not_guessed() -> None:
    shares = create_shares(os.urandom(32), 5, 9)
    with pytest.raises(ValueError, match="Duplicate"):
        combine_shares([shares[0], shares[0], *shares[1:5]])
    with pytest.raises(ValueError, match="different lengths"):
        combine_shares([shares[0], shares[1][:-16], *shares[2:5]])
    with pytest.raises(ValueError, match="no shares"):
        combine_shares([])
    # Four shares of a threshold-5 secret interpolate to garbage; both implementations
    # give the same outcome, and the padding check rejects it in most draws.
    refused = 0
    for _ in range(20):
        few = create_shares(os.urandom(32), 5, 9)[:4]
        ours, flowers = _outcome(combine_shares, few), _outcome(flower_combine, few)
        assert ours == flowers
        refused += ours == "Failed to combine shares"
    assert refused >= 15


def _outcome(combine: object, shares: list[bytes]) -> bytes | str:
    try:
        return combine(shares)  # type: ignore[operator]
    except ValueError as exc:
        return str(exc)


def test_coefficients_are_cached_per_index_set() -> None:
    lagrange_at_zero.cache_clear()
    for _ in range(5):
        combine_shares(create_shares(os.urandom(32), 3, 5))
    info = lagrange_at_zero.cache_info()
    assert (info.misses, info.hits) == (1, 4)
