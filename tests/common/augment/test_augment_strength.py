"""The ``augment-strength`` knob: one multiplier over each modality's calibrated strengths."""

from __future__ import annotations

import pytest
import torch

from common.augment import ImageAugment, SensorAugment, make_augment


def _distance(aug: torch.nn.Module, x: torch.Tensor) -> float:
    """Mean squared distance of a seeded view from its input."""
    y = aug(x, generator=torch.Generator().manual_seed(0))
    return float(((y - x) ** 2).mean())


def test_strength_one_is_the_calibrated_default() -> None:
    x = torch.randn(16, 6, 64, generator=torch.Generator().manual_seed(1))
    a = make_augment("sensor", 1.0)(x, generator=torch.Generator().manual_seed(0))
    b = SensorAugment()(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_sensor_parameters_scale_and_stay_valid() -> None:
    half = SensorAugment.with_strength(0.5)
    assert (half.jitter_std, half.scale_std, half.max_rotation_deg) == (0.025, 0.05, 15.0)
    assert half.crop_min == pytest.approx(0.75)  # range 1 - 0.5 halved
    assert half.time_mask_frac == pytest.approx(0.15)
    huge = SensorAugment.with_strength(10.0)
    assert huge.crop_min == pytest.approx(0.1) and huge.time_mask_frac == pytest.approx(0.9)


def test_image_parameters_scale_and_stay_valid() -> None:
    half = ImageAugment.with_strength(0.5)
    assert half.crop_min_area == pytest.approx(0.7)  # range 1 - 0.4 halved
    assert (half.brightness, half.contrast, half.blur_p) == (0.2, 0.2, 0.1)
    assert half.flip_p == 0.5
    huge = ImageAugment.with_strength(10.0)
    assert huge.crop_min_area == pytest.approx(0.05) and huge.blur_p == 1.0


@pytest.mark.parametrize(("kind", "shape"), [("sensor", (64, 6, 128)), ("image", (64, 1, 28, 28))])
def test_stronger_views_move_further_from_the_input(kind: str, shape: tuple[int, ...]) -> None:
    x = torch.rand(shape, generator=torch.Generator().manual_seed(2))
    d = [_distance(make_augment(kind, s), x) for s in (0.25, 1.0, 2.0)]
    assert d[0] < d[1] < d[2]


def test_bad_strength_is_refused() -> None:
    with pytest.raises(ValueError, match="strength must be > 0"):
        make_augment("sensor", 0.0)
    with pytest.raises(ValueError, match="not both"):
        make_augment("sensor", 0.5, jitter_std=0.1)
