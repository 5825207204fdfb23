"""BYOL (Grill et al. 2020, arXiv:2006.07733): predict a slow-moving target's projection."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from common.models.heads import PredictionHead, ProjectionHead
from common.ssl.base import SSLMethod, encoder_out_dim
from common.ssl.losses import NegativeCosineLoss

TAU_SCHEDULES = ("constant", "cosine")
TARGET_ON_GLOBAL = ("keep", "copy")


class BYOL(SSLMethod):
    """Online encoder + projector + predictor regressing an EMA target's projection.

    Federated split (FedU/FedBYOL style, Zhuang et al. 2021): the online encoder and projector
    are shared; the predictor, the target network and the EMA step counter stay local.

    `target_on_global` says what `on_global_update` does with the local target once the
    online weights were replaced by the global ones:
      * "keep" (default): nothing. The target stays the client's own slow average, so it lags
        the global model and pulls local training towards what the client learnt before; that
        smooths the jump to the new global weights (FedU, FedEMA keep the target local too).
      * "copy": reset the target to the new global online network (a fresh BYOL start each
        round; the predictor still stays local).

    The loss is the symmetric 2 - 2cos of BYOL averaged over both directions, in [0, 4].
    """

    name = "byol"
    ema_step: Tensor

    def __init__(
        self,
        encoder: nn.Module,
        *,
        tau: float = 0.99,
        tau_schedule: str = "constant",
        total_steps: int | None = None,
        proj_hidden_dim: int = 256,
        proj_out_dim: int = 128,
        pred_hidden_dim: int = 256,
        proj_norm: str = "batch",
        pred_norm: str = "batch",
        target_on_global: str = "keep",
        in_dim: int | None = None,
    ) -> None:
        super().__init__(encoder)
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau}")
        if tau_schedule not in TAU_SCHEDULES:
            raise ValueError(
                f"unknown tau_schedule {tau_schedule!r}; choose one of {TAU_SCHEDULES}"
            )
        if tau_schedule == "cosine" and (total_steps is None or total_steps < 1):
            raise ValueError("tau_schedule='cosine' needs total_steps >= 1")
        if target_on_global not in TARGET_ON_GLOBAL:
            raise ValueError(
                f"unknown target_on_global {target_on_global!r}; choose one of {TARGET_ON_GLOBAL}"
            )
        dim = in_dim if in_dim is not None else encoder_out_dim(encoder)
        self.projector = ProjectionHead(dim, proj_hidden_dim, proj_out_dim, norm=proj_norm)
        self.predictor = PredictionHead(proj_out_dim, pred_hidden_dim, proj_out_dim, norm=pred_norm)
        self.target_encoder = copy.deepcopy(self.encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for p in self._target_params():
            p.requires_grad_(False)
        # Local state: how many EMA updates this client has done (drives the cosine schedule).
        self.register_buffer("ema_step", torch.zeros((), dtype=torch.long))
        self.base_tau = tau
        self.tau_schedule = tau_schedule
        self.total_steps = total_steps
        self.target_on_global = target_on_global
        self.criterion = NegativeCosineLoss()

    def _online_params(self) -> list[Tensor]:
        return [*self.encoder.parameters(), *self.projector.parameters()]

    def _target_params(self) -> list[Tensor]:
        return [*self.target_encoder.parameters(), *self.target_projector.parameters()]

    def current_tau(self) -> float:
        """EMA decay for the next update: constant, or BYOL's cosine ramp from tau to 1."""
        if self.tau_schedule == "constant" or self.total_steps is None:
            return self.base_tau
        progress = min(int(self.ema_step.item()), self.total_steps) / self.total_steps
        return 1.0 - (1.0 - self.base_tau) * (math.cos(math.pi * progress) + 1.0) / 2.0

    def training_loss(self, v1: Tensor, v2: Tensor) -> Tensor:
        if v1.shape != v2.shape:
            raise ValueError(f"views must have equal shapes, got {v1.shape}, {v2.shape}")
        v = torch.cat([v1, v2], dim=0)
        p1, p2 = self.predictor(self.projector(self.encoder(v))).chunk(2, dim=0)
        with torch.no_grad():
            t1, t2 = self.target_projector(self.target_encoder(v)).chunk(2, dim=0)
        return 0.5 * (self.criterion(p1, t2) + self.criterion(p2, t1))

    @torch.no_grad()
    def after_step(self) -> None:
        """target <- tau * target + (1 - tau) * online."""
        tau = self.current_tau()
        targets, online = self._target_params(), self._online_params()
        torch._foreach_mul_(targets, tau)
        torch._foreach_add_(targets, [p.detach() for p in online], alpha=1.0 - tau)
        self.ema_step += 1

    @torch.no_grad()
    def on_global_update(self) -> None:
        if self.target_on_global == "copy":
            self.reset_target()

    @torch.no_grad()
    def init_local_state(self) -> None:
        self.reset_target()

    def reset_target(self) -> None:
        """Make the target an exact copy of the online encoder and projector."""
        for t, o in zip(self._target_params(), self._online_params(), strict=True):
            t.copy_(o)
