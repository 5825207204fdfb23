"""Shamir sharing for SecAgg+ against Flower's and pycryptodome's own."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from Crypto.Protocol.SecretSharing import _Element
from flwr.common.secure_aggregation.crypto.shamir import combine_shares as flower_combine
from flwr.common.secure_aggregation.crypto.shamir import create_shares

from common.shamir import combine_shares, gf_inverse, gf_mul, lagrange_at_zero
from common.shamir import create_shares as fast_split


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


@pytest.mark.parametrize("seed", range(4))
def test_our_shares_are_rebuilt_by_flowers_combine(seed: int) -> None:
    rng = random.Random(seed)
    for size in (1, 16, 32, 33):
        n = rng.randint(3, 30)
        t = rng.randint(2, n)
        secret = os.urandom(size)
        shares = fast_split(secret, t, n)
        assert len(shares) == n and len({s[:4] for s in shares}) == n
        assert flower_combine(rng.sample(shares, rng.randint(t, n))) == secret


def test_split_draws_fresh_uniform_coefficients() -> None:
    secret = bytes(32)
    firsts = [fast_split(secret, 3, 5)[0] for _ in range(300)]
    assert len(set(firsts)) == 300  # a new random polynomial every time
    # With threshold 3, one share of a fixed secret is uniform: its bytes look it.
    values = np.frombuffer(b"".join(f[4:] for f in firsts), np.uint8)  # 3 chunks each
    counts = np.bincount(values, minlength=256)
    expected = len(values) / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 340  # 255 degrees of freedom: p < 1e-4 above this


def test_split_refuses_impossible_thresholds() -> None:
    with pytest.raises(ValueError, match="threshold"):
        fast_split(b"k", 4, 3)
    with pytest.raises(ValueError, match="threshold"):
        fast_split(b"k", 0, 3)
