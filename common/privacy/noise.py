"""Server-side Gaussian noise on the aggregate (DP-FedAvg's Gaussian mechanism).

McMahan et al., ICLR 2018, Algorithm 1: with every update clipped to L2 norm C, the
sum of the updates has L2 sensitivity C to adding or removing one user, so Gaussian
noise N(0, (sigma * C)^2) per coordinate on the sum, or sigma * C / W on the
fixed-denominator mean sum / W, is the Gaussian mechanism with noise multiplier sigma.
"""

from __future__ import annotations

import numpy as np


def noise_std(noise_multiplier: float, clipping_norm: float, denominator: int) -> float:
    """Per-coordinate standard deviation of the noise on ``sum / denominator``."""
    if noise_multiplier < 0 or clipping_norm <= 0 or denominator <= 0:
        raise ValueError(
            "noise_multiplier must be >= 0, clipping_norm and denominator > 0; got "
            f"{noise_multiplier}, {clipping_norm}, {denominator}"
        )
    return noise_multiplier * clipping_norm / denominator


def add_gaussian_noise(
    arrays: list[np.ndarray], std: float, rng: np.random.Generator
) -> list[np.ndarray]:
    """``arrays`` plus independent N(0, std^2) noise on every coordinate, in float64."""
    return [
        np.asarray(a, dtype=np.float64) + rng.normal(0.0, std, size=np.shape(a)) for a in arrays
    ]
