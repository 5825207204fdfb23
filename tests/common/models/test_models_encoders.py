"""Encoders, heads and the encoder registry."""

from __future__ import annotations

import pytest
import torch

from common.models import (
    ENCODERS,
    CNN1DEncoder,
    PredictionHead,
    ProjectionHead,
    ResNet2DEncoder,
    build_encoder,
    default_arch_for,
)


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("shape", [(6, 128), (1, 8, 8), (1, 28, 28)])
def test_default_encoder_shapes_and_no_buffers(shape: tuple[int, ...]) -> None:
    arch, hp = default_arch_for(shape)
    enc = build_encoder(arch, **hp)
    out = enc(torch.randn(3, *shape))
    assert out.shape == (3, enc.out_dim)
    assert list(enc.buffers()) == []
    assert all(p.dtype == torch.float32 for p in enc.parameters())


def test_cnn1d_defaults() -> None:
    enc = CNN1DEncoder()
    assert 70_000 <= _params(enc) <= 100_000
    assert enc(torch.randn(2, 6, 100)).shape == (2, enc.out_dim)  # any length works
    for pool, dim in [("avg", 128), ("max", 128), ("avgmax", 256)]:
        assert CNN1DEncoder(pool=pool).out_dim == dim
    with pytest.raises(ValueError):
        CNN1DEncoder(pool="median")


def test_resnet2d_is_residual_and_small() -> None:
    enc = ResNet2DEncoder(in_channels=3)
    assert enc(torch.randn(2, 3, 28, 28)).shape == (2, 128)
    assert _params(enc) < 500_000


def test_heads_have_no_buffers_and_map_dims() -> None:
    for norm in ("batch", "layer", "none"):
        proj = ProjectionHead(256, 64, 32, norm=norm)
        pred = PredictionHead(32, 64, 32, norm=norm)
        z = proj(torch.randn(5, 256))
        assert z.shape == (5, 32) and pred(z).shape == (5, 32)
        assert list(proj.buffers()) == [] and list(pred.buffers()) == []
    with pytest.raises(ValueError):
        ProjectionHead(8, norm="instance")


def test_registry() -> None:
    assert set(ENCODERS) == {"cnn1d", "resnet2d"}
    assert default_arch_for((6, 128)) == ("cnn1d", {"in_channels": 6})
    assert default_arch_for((3, 32, 32)) == ("resnet2d", {"in_channels": 3})
    with pytest.raises(ValueError, match="cnn1d"):
        build_encoder("vit")
    with pytest.raises(ValueError):
        default_arch_for((10,))
