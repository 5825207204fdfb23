"""Project embeddings to a few dimensions before a bandit sees them.

A linear bandit's per-step cost grows with the square of the context width (d = 256
embedding dims: 6 x 256 x 256 multiply-adds per decision) and its exploration with
the width too, so a device projects first. Two choices:

- ``PCAProjection.fit(z, dim)``: principal components of embeddings the device already
  has (its few labeled windows or its first unlabeled ones), whitened so every kept
  direction has unit variance and one ridge strength suits them all;
- ``RandomProjection(in_dim, dim)``: a fixed Gaussian map (Johnson–Lindenstrauss),
  for a device that starts with no windows at all.

Both map one embedding ``(D,)`` to ``(dim,)`` and a batch ``(N, D)`` to ``(N, dim)``.
"""

from __future__ import annotations

import numpy as np

from common.errors import BadInputError


class ProjectionError(BadInputError):
    """Embeddings of the wrong width, NaN/Inf, or too few to fit the projection."""


class _Linear:
    def __init__(self, mean: np.ndarray, matrix: np.ndarray) -> None:
        self.mean = np.ascontiguousarray(mean, dtype=np.float64)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float64)  # (D, dim)

    @property
    def in_dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def transform(self, z: np.ndarray) -> np.ndarray:
        """(D,) -> (dim,), (N, D) -> (N, dim), float64."""
        arr = np.asarray(z, dtype=np.float64)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.in_dim:
            raise ProjectionError(
                f"expected embeddings (D,) or (N, D) with D={self.in_dim}, got {np.shape(z)}"
            )
        if not np.isfinite(arr).all():
            raise ProjectionError("embeddings hold NaN or Inf values")
        out: np.ndarray = (arr - self.mean) @ self.matrix
        return out


class PCAProjection(_Linear):
    """Centered, optionally whitened principal components of a set of embeddings."""

    @classmethod
    def fit(cls, z: np.ndarray, dim: int, whiten: bool = True) -> PCAProjection:
        x = np.asarray(z, dtype=np.float64)
        if x.ndim != 2:
            raise ProjectionError(f"expected embeddings (N, D), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ProjectionError("embeddings hold NaN or Inf values")
        n, width = x.shape
        if not 1 <= dim <= min(width, n - 1):
            raise ProjectionError(
                f"PCA to {dim} dims needs 1 <= dim <= D={width} and at least {dim + 1} "
                f"embeddings, got {n}"
            )
        from threadpoolctl import threadpool_limits

        mean = x.mean(axis=0)
        # One BLAS thread: on a busy 2-core machine a threaded SVD of 300 x 64 spin-waits
        # for up to a second; single-threaded it takes milliseconds.
        with threadpool_limits(limits=1):
            _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        comps = vt[:dim].T  # (D, dim)
        if whiten:
            std = s[:dim] / np.sqrt(max(n - 1, 1))
            # A direction with (almost) no variance would be blown up to noise: floor it.
            comps = comps / np.maximum(std, 1e-6 * max(float(std[0]), 1e-12))
        return cls(mean, comps)


class RandomProjection(_Linear):
    """A seeded Gaussian map scaled by 1/sqrt(dim), which keeps distances on average."""

    def __init__(self, in_dim: int, dim: int, seed: int = 0) -> None:
        if not 1 <= dim <= in_dim:
            raise ProjectionError(f"need 1 <= dim <= in_dim={in_dim}, got {dim}")
        rng = np.random.default_rng(seed)
        super().__init__(np.zeros(in_dim), rng.standard_normal((in_dim, dim)) / np.sqrt(dim))
