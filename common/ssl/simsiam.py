"""SimSiam (Chen & He, CVPR 2021, arXiv:2011.10566): a Siamese net kept from collapse by
stop-gradient and a predictor, with no negatives and no momentum target."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from common.models.heads import PredictionHead, ProjectionHead
from common.ssl.base import SSLMethod, encoder_out_dim
from common.ssl.losses import NegativeCosineLoss


class SimSiam(SSLMethod):
    """Encoder + projector f and predictor h; loss D(h(f(v1)), sg(f(v2))) symmetrised.

    Federated split: everything is shared (encoder, projector *and* predictor). SimSiam has
    no target network, so its predictor is a plain part of the one online model rather than
    per-client state like BYOL's; averaging it is what FedSimSiam does (Zhuang et al., ICLR
    2022). A client-side algorithm may still treat the predictor specially (FedU keeps it
    local while the client diverges, FedEMA blends it): see ``common.fedalgo``.

    Deviations from the paper, for the small encoders here: the projector is the repo's
    2-layer ``ProjectionHead`` (the paper's has 3 layers and a BatchNorm on its output, worth
    0.7 points in its Table 3 ablation); the predictor keeps the paper's 4x bottleneck
    (``pred_hidden_dim = proj_out_dim // 4``). The loss is ``NegativeCosineLoss``'s 2 - 2cos,
    an affine map of the paper's -cos (same minimiser, gradients x2), averaged over both
    directions, in [0, 4]. Both views go through one forward pass, as in SimCLR and BYOL here.
    """

    name = "simsiam"
    shared_modules = ("encoder", "projector", "predictor")

    def __init__(
        self,
        encoder: nn.Module,
        *,
        proj_hidden_dim: int = 256,
        proj_out_dim: int = 128,
        pred_hidden_dim: int | None = None,
        proj_norm: str = "batch",
        pred_norm: str = "batch",
        in_dim: int | None = None,
    ) -> None:
        super().__init__(encoder)
        dim = in_dim if in_dim is not None else encoder_out_dim(encoder)
        hidden = pred_hidden_dim if pred_hidden_dim is not None else max(proj_out_dim // 4, 1)
        self.projector = ProjectionHead(dim, proj_hidden_dim, proj_out_dim, norm=proj_norm)
        self.predictor = PredictionHead(proj_out_dim, hidden, proj_out_dim, norm=pred_norm)
        self.criterion = NegativeCosineLoss()

    def training_loss(self, v1: Tensor, v2: Tensor) -> Tensor:
        if v1.shape != v2.shape:
            raise ValueError(f"views must have equal shapes, got {v1.shape}, {v2.shape}")
        z = self.projector(self.encoder(torch.cat([v1, v2], dim=0)))
        p = self.predictor(z)
        z1, z2 = z.chunk(2, dim=0)
        p1, p2 = p.chunk(2, dim=0)
        # The criterion detaches its target: the stop-gradient that prevents collapse.
        return 0.5 * (self.criterion(p1, z2) + self.criterion(p2, z1))
