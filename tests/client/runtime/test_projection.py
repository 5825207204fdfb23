"""Projections shrink embeddings for the bandit without losing their main directions."""

from __future__ import annotations

import numpy as np
import pytest

from client.runtime.projection import PCAProjection, ProjectionError, RandomProjection


def test_pca_whitens_the_fitted_embeddings_and_keeps_the_top_directions() -> None:
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((300, 3)) * np.array([10.0, 5.0, 3.0])
    z = signal @ rng.standard_normal((3, 64)) + 0.1 * rng.standard_normal((300, 64))
    proj = PCAProjection.fit(z, dim=3)
    c = proj.transform(z)
    assert c.shape == (300, 3) and proj.transform(z[0]).shape == (3,)
    np.testing.assert_allclose(np.cov(c, rowvar=False), np.eye(3), atol=1e-8)
    # three components explain the data: reconstruct it from them almost exactly
    coef, *_ = np.linalg.lstsq(c, z - z.mean(0), rcond=None)
    assert np.abs(c @ coef - (z - z.mean(0))).max() < 1.0
    raw = PCAProjection.fit(z, dim=3, whiten=False).transform(z)
    assert raw.std(0)[0] > 5 * raw.std(0)[2] / 3  # unwhitened keeps the variances


def test_random_projection_keeps_distances_on_average() -> None:
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 256))
    c = RandomProjection(256, 64, seed=0).transform(z)
    ratio = np.linalg.norm(c[1:] - c[:-1], axis=1) / np.linalg.norm(z[1:] - z[:-1], axis=1)
    assert abs(ratio.mean() - 1.0) < 0.1
    again = RandomProjection(256, 64, seed=0).transform(z)
    assert np.array_equal(c, again)


def test_bad_input_is_refused() -> None:
    z = np.random.default_rng(2).standard_normal((10, 8))
    with pytest.raises(ProjectionError, match="at least 11 embeddings"):
        PCAProjection.fit(z, dim=10)
    with pytest.raises(ProjectionError, match="NaN"):
        PCAProjection.fit(np.full((10, 8), np.nan), dim=2)
    proj = PCAProjection.fit(z, dim=2)
    with pytest.raises(ProjectionError, match="D=8"):
        proj.transform(np.zeros(9))
    with pytest.raises(ProjectionError, match="NaN"):
        proj.transform(np.full(8, np.inf))
    with pytest.raises(ProjectionError):
        RandomProjection(8, 9)
