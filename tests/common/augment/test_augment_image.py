"""ImageAugment and the augmentation factory."""

from __future__ import annotations

import pytest
import torch

from common.augment import ImageAugment, SensorAugment, augment_kind_for, make_augment


def _img(b: int = 8, c: int = 1, s: int = 28) -> torch.Tensor:
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("shape", [(8, 1, 8, 8), (8, 1, 28, 28), (4, 3, 16, 16)])
def test_shape_and_range(shape: tuple[int, int, int, int]) -> None:
    x = torch.rand(shape)
    y = ImageAugment(blur_p=1.0)(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_seeded_and_views_differ() -> None:
    aug, x = ImageAugment(), _img()
    a = aug(x, generator=torch.Generator().manual_seed(5))
    b = aug(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(5)
    assert not torch.allclose(aug(x, generator=g), aug(x, generator=g))


def test_full_crop_with_flip_mirrors() -> None:
    x = _img()
    aug = ImageAugment(crop_min_area=1.0, crop_ratio=(1.0, 1.0), flip_p=1.0, brightness=0.0,
                       contrast=0.0, blur_p=0.0, noise_std=0.0)  # fmt: skip
    assert torch.allclose(aug(x), x.flip(-1), atol=1e-5)
    aug.flip_p = 0.0
    assert torch.allclose(aug(x), x, atol=1e-5)


def test_blur_smooths_and_keeps_constant_images() -> None:
    aug = ImageAugment(crop_min_area=1.0, crop_ratio=(1.0, 1.0), flip_p=0.0, brightness=0.0,
                       contrast=0.0, blur_p=1.0, blur_sigma=(1.0, 1.0), noise_std=0.0)  # fmt: skip
    const = torch.full((2, 1, 8, 8), 0.3)
    assert torch.allclose(aug.blur(const), const, atol=1e-6)
    x = _img()
    assert aug.blur(x).var() < x.var()


def test_factory() -> None:
    assert isinstance(make_augment("sensor"), SensorAugment)
    img = make_augment("image", flip_p=0.0)
    assert isinstance(img, ImageAugment) and img.flip_p == 0.0
    with pytest.raises(ValueError, match="'audio'"):
        make_augment("audio")
    assert augment_kind_for((6, 128)) == "sensor"
    assert augment_kind_for((1, 28, 28)) == "image"
    with pytest.raises(ValueError):
        augment_kind_for((5,))
