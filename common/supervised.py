"""Supervised training from scratch: the baseline self-supervision has to beat.

Same encoder architecture, a linear head, cross-entropy, and the same augmentations
the pretext task uses (with ``augment=True``), on however few labels the budget gives.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.augment.factory import augment_kind_for, make_augment
from common.models.registry import build_encoder, default_arch_for
from common.ssl.base import encoder_out_dim


class SupervisedModel(nn.Module):
    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder_out_dim(encoder), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def train_supervised(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    steps: int = 600,
    batch_size: int = 64,
    lr: float = 1e-3,
    augment: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> SupervisedModel:
    """Train encoder + linear head end to end for ``steps`` steps (sampling with
    replacement, so tiny label budgets get the same number of updates as large ones)."""
    if len(x) == 0:
        raise ValueError("supervised training needs at least one labeled sample")
    torch.manual_seed(seed)
    arch, hparams = default_arch_for(tuple(x.shape[1:]))
    model = SupervisedModel(build_encoder(arch, **hparams), num_classes).to(device)
    aug = make_augment(augment_kind_for(tuple(x.shape[1:]))).to(device) if augment else None
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.long, device=device)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (min(batch_size, max(len(xt), 2)),), generator=gen)
        xb, yb = xt[idx.to(device)], yt[idx.to(device)]
        if aug is not None:
            xb = aug(xb, generator=gen)
        loss = nn.functional.cross_entropy(model(xb), yb)
        if not torch.isfinite(loss):
            raise FloatingPointError("supervised training diverged (non-finite loss)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def predict(
    model: nn.Module, x: np.ndarray, batch_size: int = 512, device: str | torch.device = "cpu"
) -> np.ndarray:
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start : start + batch_size], dtype=torch.float32, device=device)
        out.append(model(xb).argmax(dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
