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


class RelationalLoss(nn.Module):
    """FedX's relational loss (Han et al., ECCV 2022, arXiv:2207.09158, eq. 3 and 6).

    Each view's embedding is compared with a set of anchor embeddings (other samples of
    the client's data); the two views' similarity distributions over the anchors are
    pulled towards their mean, so the two views relate to the other samples alike.
    Shapes: ``x1``, ``x2`` (N, D); ``anchors`` (M, D). Both distributions use
    ``temperature``, as in the paper's defaults. The loss is the mean of KL(mean || view)
    over both views, in nats per sample.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, x1: Tensor, x2: Tensor, anchors: Tensor) -> Tensor:
        if x1.shape != x2.shape or x1.dim() != 2 or anchors.dim() != 2:
            raise ValueError(
                f"need (N, D) views of equal shape and (M, D) anchors, got {x1.shape}, "
                f"{x2.shape}, {anchors.shape}"
            )
        a = F.normalize(anchors, dim=1)
        s1 = F.normalize(x1, dim=1) @ a.t() / self.temperature
        s2 = F.normalize(x2, dim=1) @ a.t() / self.temperature
        target = 0.5 * (s1.softmax(dim=1) + s2.softmax(dim=1))
        kl1 = F.kl_div(s1.log_softmax(dim=1), target, reduction="batchmean")
        kl2 = F.kl_div(s2.log_softmax(dim=1), target, reduction="batchmean")
        return 0.5 * (kl1 + kl2)
