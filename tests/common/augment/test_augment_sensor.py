"""SensorAugment: shapes, seeding, and what each component does on its own."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from common.augment import SensorAugment
from common.augment.sensor import random_rotation_matrices

OFF: dict[str, Any] = dict(
    jitter_std=0.0, scale_std=0.0, rotation=False, time_mask_frac=0.0, crop_min=1.0
)


def _x(b: int = 8, c: int = 6, length: int = 128) -> torch.Tensor:
    return torch.randn(b, c, length, generator=torch.Generator().manual_seed(1))


def test_shape_and_dtype_preserved() -> None:
    x = _x()
    y = SensorAugment()(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all()


def test_same_seed_same_view_and_two_calls_differ() -> None:
    aug, x = SensorAugment(), _x()
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(3)
    v1, v2 = aug(x, generator=g), aug(x, generator=g)
    assert not torch.allclose(v1, v2)


def test_all_off_is_identity() -> None:
    x = _x()
    assert torch.allclose(SensorAugment(**OFF)(x), x)


def test_rotation_matrices_are_rotations_within_max_angle() -> None:
    g = torch.Generator().manual_seed(0)
    r = random_rotation_matrices(64, math.radians(20), g, torch.device("cpu"))
    eye = torch.eye(3).expand(64, 3, 3)
    assert torch.allclose(r @ r.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(64), atol=1e-5)
    angle = torch.arccos(((r.diagonal(dim1=1, dim2=2).sum(1) - 1) / 2).clamp(-1, 1))
    assert angle.max() <= math.radians(20) + 1e-4


def test_rotation_preserves_triplet_norms_and_is_shared_by_acc_and_gyro() -> None:
    x = _x()
    aug = SensorAugment(**{**OFF, "rotation": True, "max_rotation_deg": 45.0})
    y = aug(x, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(x, y)
    for t in range(2):
        n_in = x[:, 3 * t : 3 * t + 3].norm(dim=1)
        n_out = y[:, 3 * t : 3 * t + 3].norm(dim=1)
        assert torch.allclose(n_in, n_out, atol=1e-5)
    # Same rotation for both triplets: put the gyro equal to the acc and they must stay equal.
    x2 = torch.cat([x[:, :3], x[:, :3]], dim=1)
    y2 = aug(x2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(y2[:, :3], y2[:, 3:], atol=1e-6)


def test_rotation_skipped_when_channels_not_triplets() -> None:
    x = _x(c=4)
    y = SensorAugment(**{**OFF, "rotation": True})(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, y)


def test_time_mask_zeros_one_contiguous_span() -> None:
    x = torch.randn(64, 6, 128).abs() + 1.0  # no zeros anywhere before masking
    aug = SensorAugment(**{**OFF, "time_mask_frac": 0.3, "time_mask_p": 1.0})
    y = aug(x, generator=torch.Generator().manual_seed(0))
    zero = (y == 0).all(dim=1)  # (B, L): all channels zeroed at the same time steps
    assert torch.equal((y == 0).any(dim=1), zero)
    lengths = zero.sum(dim=1)
    assert lengths.max() <= int(0.3 * 128) and lengths.max() > 0
    for row in zero:
        idx = row.nonzero().flatten()
        if idx.numel():
            assert idx[-1] - idx[0] + 1 == idx.numel()  # contiguous
    assert torch.equal(y[~zero.unsqueeze(1).expand_as(y)], x[~zero.unsqueeze(1).expand_as(x)])


def test_crop_resize_keeps_shape_and_stretches_a_ramp() -> None:
    length = 128
    ramp = torch.linspace(0.0, 1.0, length).expand(16, 3, length).contiguous()
    aug = SensorAugment(**{**OFF, "crop_min": 0.5})
    y = aug(ramp, generator=torch.Generator().manual_seed(0))
    assert y.shape == ramp.shape
    d = y.diff(dim=2)
    assert (d >= -1e-6).all()  # still monotone: a crop of a ramp is a ramp
    span = y[..., -1] - y[..., 0]  # each crop covers a fraction in [0.5, 1] of the range
    assert (span >= 0.5 - 1e-4).all() and (span <= 1.0 + 1e-4).all()
    assert (span < 0.99).any()


def test_scale_is_per_channel_and_jitter_is_additive() -> None:
    x = torch.ones(4, 6, 32)
    y = SensorAugment(**{**OFF, "scale_std": 0.2})(x, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(y, y[..., :1].expand_as(y))  # constant along time
    assert y[..., 0].std() > 0.05
    z = SensorAugment(**{**OFF, "jitter_std": 0.1})(x, generator=torch.Generator().manual_seed(0))
    assert 0.07 < (z - x).std() < 0.13


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        SensorAugment()(torch.randn(6, 128))
    with pytest.raises(ValueError):
        SensorAugment(crop_min=0.0)
