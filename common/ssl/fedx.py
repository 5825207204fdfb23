"""FedX (Han et al., ECCV 2022, arXiv:2207.09158): SimCLR plus cross knowledge
distillation from the global model the round started from."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from common.models.heads import PredictionHead, ProjectionHead
from common.ssl.base import SSLMethod, encoder_out_dim
from common.ssl.losses import NTXentLoss, RelationalLoss


class FedX(SSLMethod):
    """Encoder + projector + predictor; local and global contrastive and relational losses.

    A client whose data hold a few classes finds its negatives among those classes only,
    so its local SimCLR drifts away from a representation that separates the others. FedX
    keeps the global model of the round (frozen, in eval mode) as a teacher:

    * local: NT-Xent(z1, z2) on the projections, plus the relational loss of z1, z2 over
      anchors (the projections of a random batch of the client's own data);
    * global: NT-Xent(p1, t2), the predictor's output for view 1 against the teacher's
      projection of view 2, plus the relational loss of p1, p2 over the teacher's
      projections of the anchors.

    Everything it trains is shared (encoder, projector, predictor), as in the paper; the
    teacher is a copy of the global weights, never sent and never saved. All of it runs on
    the client, so the server's SecAgg+ sum is unchanged.

    Deviations from the paper: the anchors are the previous step's first view (the paper
    draws a second random batch from the same local data; this costs no extra batch), so
    the relational losses start at a round's second step; all four terms use one
    temperature (the paper's defaults are all 0.1). Without a global model (pooled
    training, on-device adaptation) only the local terms apply.
    """

    name = "fedx"
    shared_modules = ("encoder", "projector", "predictor")
    config_hparams = ("temperature",)

    def __init__(
        self,
        encoder: nn.Module,
        *,
        temperature: float = 0.1,
        proj_hidden_dim: int = 256,
        proj_out_dim: int = 128,
        pred_hidden_dim: int = 256,
        proj_norm: str = "batch",
        pred_norm: str = "batch",
        in_dim: int | None = None,
    ) -> None:
        super().__init__(encoder)
        dim = in_dim if in_dim is not None else encoder_out_dim(encoder)
        self.projector = ProjectionHead(dim, proj_hidden_dim, proj_out_dim, norm=proj_norm)
        self.predictor = PredictionHead(proj_out_dim, pred_hidden_dim, proj_out_dim, norm=pred_norm)
        self.contrast = NTXentLoss(temperature)
        self.relation = RelationalLoss(temperature)
        # Held outside the module tree (a module attribute would register it): not in the
        # state dict, never shared or saved. A plain tensor attribute is not registered.
        self._teacher: list[nn.Module] = []
        self._anchors: Tensor | None = None

    @property
    def teacher(self) -> nn.Module | None:
        """The frozen global model (encoder + projector) of this round, if any."""
        return self._teacher[0] if self._teacher else None

    def on_global_update(self) -> None:
        """Freeze a copy of the weights the round starts from: the global model."""
        teacher = copy.deepcopy(nn.Sequential(self.encoder, self.projector)).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        self._teacher[:] = [teacher]
        self._anchors = None

    def training_loss(self, v1: Tensor, v2: Tensor) -> Tensor:
        if v1.shape != v2.shape:
            raise ValueError(f"views must have equal shapes, got {v1.shape}, {v2.shape}")
        n = v1.shape[0]
        anchors = self._anchors
        if anchors is None or anchors.shape[1:] != v1.shape[1:]:
            anchors = v1[:0]
        # One forward pass over views and anchors: the projector's batch statistics see all.
        z = self.projector(self.encoder(torch.cat([v1, v2, anchors], dim=0)))
        z1, z2, za = z[:n], z[n : 2 * n], z[2 * n :]
        loss = self.contrast(z1, z2)
        if len(za):
            loss = loss + self.relation(z1, z2, za)
        teacher = self.teacher
        if teacher is not None:
            loss = loss + self._global_terms(teacher, v2, anchors, z1, z2)
        self._anchors = v1.detach()
        return loss

    def _global_terms(
        self, teacher: nn.Module, v2: Tensor, anchors: Tensor, z1: Tensor, z2: Tensor
    ) -> Tensor:
        """NT-Xent of the predictor's output against the teacher, and their relations."""
        teacher.to(v2.device)
        with torch.no_grad():
            t = teacher(torch.cat([v2, anchors], dim=0))
        t2, ta = t[: len(v2)], t[len(v2) :]
        p = self.predictor(torch.cat([z1, z2], dim=0))
        p1, p2 = p.chunk(2, dim=0)
        loss = self.contrast(p1, t2)
        if len(ta):
            loss = loss + self.relation(p1, p2, ta)
        return loss
