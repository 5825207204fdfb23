"""The local self-supervised training loop shared by simulations, clients and the device runtime."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from common.ssl.base import SSLMethod

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class TrainResult:
    """Summary of one call to `train_epochs` (losses are the pretext loss per step)."""

    loss: float  # mean over all steps
    first_loss: float  # loss of the very first step, to see whether training moved
    steps: int
    samples: int  # samples seen, summed over steps (each seen through two views)
    seconds: float


def make_optimizer(
    method: SSLMethod, name: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Optimizer over the trainable parameters (BYOL's target is frozen and left out)."""
    params = [p for p in method.parameters() if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def _batches(n: int, batch_size: int, drop_last: bool, perm: Tensor) -> list[Tensor]:
    """Index batches of one epoch; batches under 2 samples are skipped (no pairs to contrast)."""
    if n <= batch_size:
        return [perm]
    stop = n - n % batch_size if drop_last else n
    return [b for b in perm[:stop].split(batch_size) if b.numel() >= 2]


def train_epochs(
    method: SSLMethod,
    x: np.ndarray | Tensor,
    augment: nn.Module,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    device: torch.device | str = "cpu",
    seed: int = 0,
    drop_last: bool = True,
    progress: Callable[[int, float], None] | None = None,
    max_steps: int = 0,
) -> TrainResult:
    """Train `method` for `epochs` passes over unlabeled samples `x` ((N, C, L) or (N, C, H, W)).

    Each step draws two augmented views of a batch, computes `method.training_loss`, steps the
    optimizer and calls `method.after_step()`. A torch.Generator seeded with `seed` drives both
    the shuffling and the augmentations, so a call is reproducible. When N < batch_size, one
    batch of all N samples is used per epoch. `progress(epoch, mean_loss)` is called after each
    epoch (epoch counted from 1). ``max_steps`` > 0 stops after that many steps, within
    the epochs. Raises FloatingPointError at the first non-finite loss.
    """
    if epochs < 0 or batch_size < 1 or max_steps < 0:
        raise ValueError(
            f"need epochs >= 0, batch_size >= 1, max_steps >= 0; got {epochs}, {batch_size}, "
            f"{max_steps}"
        )
    dev = torch.device(device)
    data = torch.as_tensor(x, dtype=torch.float32).to(dev)
    n = int(data.shape[0])
    if n < 2:
        raise ValueError(f"need at least 2 samples to train, got {n}")
    gen = torch.Generator().manual_seed(seed)
    method.to(dev).train()
    augment.to(dev)

    losses: list[float] = []
    samples = 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        if max_steps and len(losses) >= max_steps:
            break
        perm = torch.randperm(n, generator=gen).to(dev)
        epoch_losses: list[float] = []
        for idx in _batches(n, batch_size, drop_last, perm):
            if max_steps and len(losses) >= max_steps:
                break
            batch = data[idx]
            v1 = augment(batch, generator=gen)
            v2 = augment(batch, generator=gen)
            loss = method.training_loss(v1, v2)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"non-finite pretext loss ({value}) at step {len(losses) + 1} "
                    f"(epoch {epoch}, batch {len(epoch_losses) + 1}); check inputs and lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            method.after_step()
            losses.append(value)
            epoch_losses.append(value)
            samples += int(idx.numel())
        if progress is not None:
            progress(epoch, sum(epoch_losses) / max(len(epoch_losses), 1))
    return TrainResult(
        loss=sum(losses) / len(losses) if losses else float("nan"),
        first_loss=losses[0] if losses else float("nan"),
        steps=len(losses),
        samples=samples,
        seconds=time.perf_counter() - start,
    )


@torch.no_grad()
def pretext_loss(
    method: SSLMethod, x: np.ndarray, augment: nn.Module, *, batch_size: int, seed: int = 0
) -> float:
    """The mean pretext loss of ``method`` on ``x`` (two seeded augmented views per batch,
    no update): how well the model does its self-supervised task on held-out data."""
    data = torch.as_tensor(x, dtype=torch.float32)
    if len(data) < 2:
        raise ValueError(f"need at least 2 samples for a pretext loss, got {len(data)}")
    gen = torch.Generator().manual_seed(seed)
    was_training = method.training
    method.eval()
    losses, weights = [], []
    for idx in _batches(len(data), batch_size, False, torch.arange(len(data))):
        batch = data[idx]
        losses.append(
            float(
                method.training_loss(augment(batch, generator=gen), augment(batch, generator=gen))
            )
        )
        weights.append(len(idx))
    method.train(was_training)
    return float(np.average(losses, weights=weights))
