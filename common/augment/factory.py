"""Build the augmentation for a data modality by name, so configs can say "sensor" or "image"."""

from __future__ import annotations

from typing import Any

from torch import nn

from common.augment.image import ImageAugment
from common.augment.sensor import SensorAugment

AUGMENTS: dict[str, type[nn.Module]] = {"sensor": SensorAugment, "image": ImageAugment}


def make_augment(kind: str, strength: float = 1.0, **overrides: Any) -> nn.Module:
    """Augmentation for `kind` ("sensor" for (B, C, L), "image" for (B, C, H, W)).

    `strength` scales every calibrated strength (the run option ``augment-strength``);
    `overrides` are passed to the constructor instead (e.g. max_rotation_deg=30), anything
    not given keeping the calibrated default. The two do not mix.
    """
    try:
        cls = AUGMENTS[kind]
    except KeyError:
        raise ValueError(
            f"unknown augmentation kind {kind!r}; choose one of {sorted(AUGMENTS)}"
        ) from None
    if not strength > 0:
        raise ValueError(f"augmentation strength must be > 0, got {strength}")
    if strength == 1.0:
        return cls(**overrides)
    if overrides:
        raise ValueError("give either an augmentation strength or explicit overrides, not both")
    return cls.with_strength(strength)  # type: ignore[attr-defined]


def augment_kind_for(input_shape: tuple[int, ...]) -> str:
    """Augmentation kind for a per-sample shape: (C, L) -> sensor, (C, H, W) -> image."""
    if len(input_shape) == 2:
        return "sensor"
    if len(input_shape) == 3:
        return "image"
    raise ValueError(
        f"no augmentation for per-sample shape {input_shape}; expected (C, L) or (C, H, W)"
    )
