"""SimCLR (Chen et al. 2020, arXiv:2002.05709): contrast two views against the rest of the batch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from common.models.heads import ProjectionHead
from common.ssl.base import SSLMethod, encoder_out_dim
from common.ssl.losses import NTXentLoss


class SimCLR(SSLMethod):
    """Encoder + projection head + NT-Xent loss.

    All of its state is the online network, so everything is shared and nothing is local.
    """

    name = "simclr"
    config_hparams = ("temperature",)

    def __init__(
        self,
        encoder: nn.Module,
        *,
        temperature: float = 0.1,
        proj_hidden_dim: int = 256,
        proj_out_dim: int = 128,
        proj_norm: str = "batch",
        in_dim: int | None = None,
    ) -> None:
        super().__init__(encoder)
        dim = in_dim if in_dim is not None else encoder_out_dim(encoder)
        self.projector = ProjectionHead(dim, proj_hidden_dim, proj_out_dim, norm=proj_norm)
        self.criterion = NTXentLoss(temperature)

    def training_loss(self, v1: Tensor, v2: Tensor) -> Tensor:
        if v1.shape != v2.shape:
            raise ValueError(f"views must have equal shapes, got {v1.shape}, {v2.shape}")
        # One forward pass over both views: half the kernel launches, and the projector's
        # batch-statistics normalisation sees all 2N samples, as in the SimCLR reference code.
        z = self.projector(self.encoder(torch.cat([v1, v2], dim=0)))
        z1, z2 = z.chunk(2, dim=0)
        return self.criterion(z1, z2)
