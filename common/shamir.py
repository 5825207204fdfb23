"""Shamir secret sharing for SecAgg+, in Flower's share format, fast for large cohorts.

SecAgg+ (Bell et al., CCS 2020) makes the server rebuild one secret per client at the
unmask stage: each survivor's mask seed, each dropped client's key. Flower's
``combine_shares`` interpolates with pycryptodome's ``Shamir.combine``, which computes
every Lagrange coefficient anew, inverses included, for every 16-byte chunk of every
secret: about 30 ms a secret here, 30 s of a 1,000-client round on one core.

The coefficients depend only on which share indices arrived, and in a healthy round
every secret arrives with the same ones (1..k, its k neighbours). ``combine_shares``
caches the coefficients per index set, so a secret costs k field multiplications per
chunk. Each client splits two secrets per round the same way (``Shamir.split``, 7 ms
here); ``create_shares`` evaluates the random polynomial by Horner's rule at the small
public indices 1..n (0.2 ms), its coefficients drawn from the OS's CSPRNG
(``secrets``) as pycryptodome draws them.

Both read and write exactly the format of ``flwr.common.secure_aggregation.crypto.
shamir`` (a share: 4-byte little-endian index, then 16 bytes per chunk of the
PKCS#7-padded secret; GF(2^128) with pycryptodome's polynomial and big-endian
encoding), so either side can be Flower's. Framework-free: ints and bytes only.
"""

from __future__ import annotations

import secrets
from functools import lru_cache

# x^128 + x^7 + x^2 + x + 1 (pycryptodome's _Element.irr_poly, as in GCM).
IRREDUCIBLE = (1 << 128) | 0x87
CHUNK = 16
INDEX_BYTES = 4


def gf_mul(a: int, b: int) -> int:
    """Product of two elements of GF(2^128) (128-bit ints, bit i = coefficient of x^i).

    Branches on the bits of ``b`` only: callers pass the public operand there (a share
    index when splitting, a Lagrange coefficient when combining); the reduction of ``a``
    is a mask, not a branch.
    """
    z = 0
    while b:
        if b & 1:
            z ^= a
        b >>= 1
        a <<= 1
        a ^= IRREDUCIBLE & -(a >> 128)
    return z


def gf_inverse(a: int) -> int:
    """a^(2^128 - 2) = a^-1 (Fermat), by square and multiply."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^128)")
    result, base, exponent = 1, a, (1 << 128) - 2
    while exponent:
        if exponent & 1:
            result = gf_mul(result, base)
        base = gf_mul(base, base)
        exponent >>= 1
    return result


@lru_cache(maxsize=256)
def lagrange_at_zero(indices: tuple[int, ...]) -> tuple[int, ...]:
    """Coefficients c_j with f(0) = sum_j c_j f(x_j) (in characteristic 2, x_j - x_m = x_j + x_m)."""
    coefficients = []
    for j, x_j in enumerate(indices):
        numerator, denominator = 1, 1
        for m, x_m in enumerate(indices):
            if m != j:
                numerator = gf_mul(numerator, x_m)
                denominator = gf_mul(denominator, x_j ^ x_m)
        coefficients.append(gf_mul(numerator, gf_inverse(denominator)))
    return tuple(coefficients)


def create_shares(secret: bytes, threshold: int, num: int) -> list[bytes]:
    """``num`` shares of ``secret``, any ``threshold`` of which rebuild it (Flower's format)."""
    if not 1 <= threshold <= num < 2**32:
        raise ValueError(f"need 1 <= threshold ({threshold}) <= num ({num})")
    pad = CHUNK - len(secret) % CHUNK
    padded = secret + bytes([pad]) * pad
    shares = [bytearray(x.to_bytes(INDEX_BYTES, "little")) for x in range(1, num + 1)]
    for start in range(0, len(padded), CHUNK):
        # f(0) = the chunk; the other coefficients uniformly random.
        coefficients = [secrets.randbits(128) for _ in range(threshold - 1)]
        coefficients.append(int.from_bytes(padded[start : start + CHUNK], "big"))
        for x, share in enumerate(shares, start=1):
            value = 0
            for c in coefficients:  # Horner: highest degree first
                value = gf_mul(value, x) ^ c
            share += value.to_bytes(CHUNK, "big")
    return [bytes(share) for share in shares]


def combine_shares(share_list: list[bytes]) -> bytes:
    """The secret behind ``share_list`` (Flower's share format); ValueError when the
    shares are inconsistent (duplicate indices, unequal lengths, or a result that is not
    a padded secret), as Flower's ``combine_shares`` raises."""
    if not share_list:
        raise ValueError("no shares to combine")
    length = len(share_list[0])
    if (length - INDEX_BYTES) % CHUNK or length <= INDEX_BYTES:
        raise ValueError(f"a share of {length} bytes is not 4 + 16 x chunks")
    if any(len(share) != length for share in share_list):
        raise ValueError("shares of different lengths")
    by_index = {int.from_bytes(s[:INDEX_BYTES], "little"): s for s in share_list}
    if len(by_index) != len(share_list):
        raise ValueError("Duplicate share")
    indices = tuple(sorted(by_index))
    coefficients = lagrange_at_zero(indices)
    padded = bytearray()
    for start in range(INDEX_BYTES, length, CHUNK):
        value = 0
        for x, c in zip(indices, coefficients, strict=True):
            value ^= gf_mul(int.from_bytes(by_index[x][start : start + CHUNK], "big"), c)
        padded += value.to_bytes(CHUNK, "big")
    return _unpad(bytes(padded))


def _unpad(padded: bytes) -> bytes:
    """Strip PKCS#7 padding (what Flower's create_shares added)."""
    n = padded[-1]
    if not 1 <= n <= CHUNK or padded[-n:] != bytes([n]) * n:
        raise ValueError("Failed to combine shares")
    return padded[:-n]
