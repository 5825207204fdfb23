"""Gaussian noise on the aggregate: std sigma * C / n, reproducible with a seeded Generator."""

from __future__ import annotations

import numpy as np
import pytest

from common.privacy.noise import add_gaussian_noise, noise_std


def test_noise_std_is_sigma_c_over_n() -> None:
    assert noise_std(1.2, 0.5, 3) == pytest.approx(0.2)
    assert noise_std(0.0, 1.0, 5) == 0.0
    for bad in ((-1.0, 1.0, 3), (1.0, 0.0, 3), (1.0, 1.0, 0)):
        with pytest.raises(ValueError):
            noise_std(*bad)


def test_empirical_std_matches_sigma_c_over_n() -> None:
    sigma, clip, n = 0.8, 2.0, 7
    std = noise_std(sigma, clip, n)
    mean = [np.full((300, 200), 0.25, dtype=np.float32), np.zeros(40_000, dtype=np.float32)]
    noised = add_gaussian_noise(mean, std, np.random.default_rng(1))
    noise = np.concatenate([(x - m).ravel() for x, m in zip(noised, mean, strict=True)])
    k = noise.size  # 100k samples: the sample std's relative error is about 1/sqrt(2k)
    assert abs(noise.std() / std - 1.0) < 5 / np.sqrt(2 * k)
    assert abs(noise.mean()) < 5 * std / np.sqrt(k)
    assert all(
        x.dtype == np.float64 and x.shape == m.shape for x, m in zip(noised, mean, strict=True)
    )


def test_seeded_generator_reproduces_and_different_seeds_differ() -> None:
    mean = [np.zeros(50)]
    a = add_gaussian_noise(mean, 1.0, np.random.default_rng(3))[0]
    b = add_gaussian_noise(mean, 1.0, np.random.default_rng(3))[0]
    c = add_gaussian_noise(mean, 1.0, np.random.default_rng(4))[0]
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
