"""Random draws for the batched augmentations: made on the generator's device, so a
seeded augmentation gives the same views on CPU and GPU."""

from __future__ import annotations

import torch
from torch import Tensor


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """U(0, 1) drawn on the generator's device (so seeding is device-independent), then moved."""
    src = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=src).to(device)


def randn(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """N(0, 1) drawn on the generator's device, then moved to `device`."""
    src = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=src).to(device)
