"""Client-side L2 clipping (DP-FedAvg): bounds the joint norm, leaves small updates alone."""

from __future__ import annotations

import numpy as np
import pytest

from common.privacy.clipping import clip_l2, l2_norm


def _update(scale: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (scale * rng.normal(size=(16, 8))).astype(np.float32),
        (scale * rng.normal(size=33)).astype(np.float32),
    ]


def test_l2_norm_is_the_norm_of_the_flattened_update() -> None:
    update = _update(1.0)
    flat = np.concatenate([a.ravel().astype(np.float64) for a in update])
    assert l2_norm(update) == pytest.approx(float(np.linalg.norm(flat)), rel=1e-12)


@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 3.0, 7.999])
def test_large_update_is_scaled_to_the_bound_keeping_its_direction(max_norm: float) -> None:
    update = _update(10.0)
    assert l2_norm(update) > max_norm
    clipped, was_clipped = clip_l2(update, max_norm)
    assert was_clipped
    assert l2_norm(clipped) <= max_norm  # never above, not even by float32 round-off
    assert l2_norm(clipped) == pytest.approx(max_norm, rel=1e-5)
    for c, u in zip(clipped, update, strict=True):
        assert c.dtype == u.dtype and c.shape == u.shape
        np.testing.assert_allclose(c, u * (max_norm / l2_norm(update)), rtol=1e-5, atol=1e-12)


def test_small_update_is_left_untouched() -> None:
    update = _update(0.01)
    clipped, was_clipped = clip_l2(update, l2_norm(update) * 1.01)
    assert not was_clipped
    for c, u in zip(clipped, update, strict=True):
        np.testing.assert_array_equal(c, u)


def test_non_positive_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_norm"):
        clip_l2(_update(1.0), 0.0)
