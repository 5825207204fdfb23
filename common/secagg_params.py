"""SecAgg+ parameters of a round: neighbourhood size, reconstruction threshold and
modulus, with the automatic defaults resolved for the round's number of clients."""

from __future__ import annotations

import math

from common.config_values import ConfigError

DEFAULT_QUANTIZATION_RANGE = 2**22
# The smallest automatic SecAgg+ modulus (Flower's default). Larger cohorts get a larger
# one; the server sums the masked int64 vectors, so clients x modulus must stay < 2**63.
MIN_AUTO_MODULUS = 2**32
INT64_LIMIT = 2**63


def resolve_shares(num_shares: int, reconstruction_threshold: int, n: int) -> tuple[int, int]:
    """(num_shares, reconstruction_threshold) for a round of ``n`` clients; 0 = auto.

    Auto picks a neighbourhood of about 2·log2(n)+1 clients (SecAgg+, Bell et al.
    2020: logarithmic neighbourhoods keep the privacy of full SecAgg at a fraction of
    its cost) and a majority threshold, so a round survives losing up to a minority
    of each neighbourhood.
    """
    shares = num_shares or min(n, max(3, 2 * math.ceil(math.log2(max(n, 2))) + 1))
    threshold = reconstruction_threshold or max(2, shares // 2 + 1)
    if not reconstruction_threshold and threshold >= shares:
        threshold = shares - 1
    return shares, threshold


def resolve_modulus(modulus_range: int, quantization_range: int, n: int) -> int:
    """The modulus for a round of ``n`` clients; ``modulus_range`` 0 = auto.

    Each client's quantized value lies in [0, quantization-range] (both ends
    included: a value clipped at +clipping-range quantizes to the top level), so the
    sum of n clients needs a modulus above n x quantization-range.
    """
    if modulus_range:
        return modulus_range
    modulus = MIN_AUTO_MODULUS
    while modulus <= n * quantization_range:
        modulus *= 2
    return modulus


def check_threshold(shares: int, threshold: int) -> None:
    """The threshold must be below the neighbourhood size and a majority of it."""
    if threshold >= shares:
        raise ConfigError(
            f"reconstruction-threshold ({threshold}) must be less than num-shares ({shares})",
            "reconstruction-threshold",
        )
    if threshold <= shares // 2:
        # With a minority threshold a server could collect enough shares of both a client's
        # self-mask seed and its pairwise key from different neighbours and unmask it alone.
        raise ConfigError(
            f"reconstruction-threshold ({threshold}) must be a majority of num-shares "
            f"({shares}): at least {shares // 2 + 1}",
            "reconstruction-threshold",
        )
