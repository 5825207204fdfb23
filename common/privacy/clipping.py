"""Client-side L2 clipping of an update (DP-FedAvg's per-user clipping).

McMahan et al., ICLR 2018, Algorithm 1 (``ClipFn``, flat clipping): the update of all
shared parameters together is scaled down to L2 norm at most C, which bounds any one
user's influence on the sum, the sensitivity the Gaussian noise is calibrated to.
"""

from __future__ import annotations

import numpy as np


def l2_norm(arrays: list[np.ndarray]) -> float:
    """The L2 norm of all ``arrays`` taken as one flat vector (computed in float64)."""
    return float(np.sqrt(sum(float(np.square(a, dtype=np.float64).sum()) for a in arrays)))


def clip_l2(arrays: list[np.ndarray], max_norm: float) -> tuple[list[np.ndarray], bool]:
    """Scale ``arrays`` jointly to L2 norm at most ``max_norm``.

    Returns the (possibly scaled) arrays in their own dtypes and whether they were
    scaled. Arrays already within the bound come back unchanged.
    """
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    norm = l2_norm(arrays)
    if norm <= max_norm:
        return list(arrays), False
    scale = max_norm / norm
    clipped = [(a.astype(np.float64) * scale).astype(a.dtype) for a in arrays]
    if l2_norm(clipped) > max_norm:  # float32 round-off left it a hair above the bound
        scale *= 1.0 - 1e-6
        clipped = [(a.astype(np.float64) * scale).astype(a.dtype) for a in arrays]
    return clipped, True
