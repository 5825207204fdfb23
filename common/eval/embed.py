"""Turn inputs into encoder features, in batches, without gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def embed(
    encoder: nn.Module,
    x: np.ndarray,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Features ``(N, D)`` as float32 numpy for inputs ``x`` of shape ``(N, ...)``."""
    was_training = encoder.training
    encoder.eval()
    outs: list[np.ndarray] = []
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])).to(device)
        outs.append(encoder(batch).float().cpu().numpy())
    encoder.train(was_training)
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outs, axis=0)
