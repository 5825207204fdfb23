"""Self-supervised losses on pairs of embeddings from two augmented views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross entropy (SimCLR, Chen et al. 2020, arXiv:2002.05709).

    The 2N embeddings of a batch are L2-normalised; for each one, its other view is the
    positive and the remaining 2N - 2 embeddings are the negatives (the "2N-way" form with the
    similarity to itself excluded). The loss is the mean over all 2N anchors.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(f"need two (N, D) tensors of equal shape, got {z1.shape}, {z2.shape}")
        n = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
        logits = z @ z.t() / self.temperature
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        idx = torch.arange(n, device=z.device)
        targets = torch.cat([idx + n, idx])
        return F.cross_entropy(logits, targets)


class NegativeCosineLoss(nn.Module):
    """2 - 2 cos(p, z), averaged over the batch (BYOL, Grill et al. 2020; SimSiam's form).

    `z` is detached inside: it is the target of a regression, and letting gradients flow
    through it lets the two branches meet halfway, i.e. collapse. Range [0, 4].
    """

    def forward(self, p: Tensor, z: Tensor) -> Tensor:
        if p.shape != z.shape:
            raise ValueError(f"p and z must have equal shapes, got {p.shape}, {z.shape}")
        cos = F.cosine_similarity(p, z.detach(), dim=-1)
        return (2.0 - 2.0 * cos).mean()
