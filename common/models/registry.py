"""Encoder registry: one name per architecture, so configs and checkpoints can refer to it."""

from __future__ import annotations

from typing import Any

from torch import nn

from common.models.encoder1d import CNN1DEncoder
from common.models.resnet2d import ResNet2DEncoder

ENCODERS: dict[str, type[nn.Module]] = {"cnn1d": CNN1DEncoder, "resnet2d": ResNet2DEncoder}


def build_encoder(arch: str, **hparams: Any) -> nn.Module:
    """Instantiate encoder `arch` with `hparams`; it exposes `out_dim` (its feature width)."""
    try:
        cls = ENCODERS[arch]
    except KeyError:
        raise ValueError(f"unknown encoder {arch!r}; choose one of {sorted(ENCODERS)}") from None
    return cls(**hparams)


def default_arch_for(input_shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """Default encoder for a per-sample shape: (C, L) -> cnn1d, (C, H, W) -> resnet2d."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        return "cnn1d", {"in_channels": shape[0]}
    if len(shape) == 3:
        return "resnet2d", {"in_channels": shape[0]}
    raise ValueError(
        f"no default encoder for per-sample shape {shape}; expected (C, L) or (C, H, W)"
    )
