"""Continual adaptation: a few pretext-loss steps on a copy of the encoder, off the decision path.

When the drift detector fires, the device trains its encoder on its recent windows with
the same self-supervised loss the federation used (``common.ssl``, ``common.train``,
``common.augment``), so the features follow the new input without any label. This
module does the training part; ``client.runtime.device_loop`` runs it in a background
thread and swaps the result in.

``encoder.pt`` holds the encoder only, not the projector the pretext loss needs, so a
fresh (seeded) projector is built and first trained alone for ``warmup_steps`` with
the encoder frozen: gradients through a random projector would otherwise push the
good federated features around for nothing. ``loss_before`` is measured after that
warm-up (the original encoder under a fitted projector) and ``loss_after`` after the
encoder steps, on the same seeded views of the same windows, so the two compare.
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from client.runtime.encoders import Embedder, OnnxEmbedder, TorchEmbedder
from common.errors import BadInputError

EVAL_WINDOWS = 256  # windows the before/after pretext loss is measured on


class AdaptError(BadInputError):
    """An adaptation setting or buffer the adaptation cannot use."""


@dataclass(frozen=True)
class AdaptConfig:
    """How to adapt: SSL method and its hyper-parameters, steps, batch, learning rate.

    ``steps = 0`` trains nothing: the loop then only refits its projection, drift
    reference, head and bandit on the recent windows (the "refit" ablation).
    """

    method: str = "simclr"
    hparams: dict[str, Any] = field(default_factory=dict)
    steps: int = 30
    warmup_steps: int = 10
    batch_size: int = 64
    lr: float = 1e-4
    warmup_lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        from common.ssl.registry import METHODS

        if self.method not in METHODS:
            raise AdaptError(f"unknown SSL method {self.method!r}; choose one of {sorted(METHODS)}")
        if self.steps < 0 or self.warmup_steps < 0:
            raise AdaptError(
                f"adaptation steps must be >= 0, got {self.steps}, {self.warmup_steps}"
            )
        if self.batch_size < 2:
            raise AdaptError(f"adaptation batch size must be >= 2, got {self.batch_size}")
        if not (self.lr > 0 and self.warmup_lr > 0):
            raise AdaptError(f"learning rates must be positive, got {self.lr}, {self.warmup_lr}")


@dataclass
class AdaptOutcome:
    """The adapted encoder (a copy, eval mode) and what the training did."""

    encoder: Any
    loss_before: float
    loss_after: float
    steps: int
    seconds: float


def _pretext_loss(method: Any, x: Any, augment: Any, seed: int, batch_size: int) -> float:
    """Mean pretext loss over seeded views of ``x`` (no gradient, no weight change)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    losses = []
    with torch.no_grad():
        for lo in range(0, len(x) - 1, batch_size):
            batch = x[lo : lo + batch_size]
            if len(batch) < 2:
                break
            v1, v2 = augment(batch, generator=gen), augment(batch, generator=gen)
            losses.append(float(method.training_loss(v1, v2)))
    return sum(losses) / len(losses) if losses else math.nan


def _epochs_for(steps: int, n: int, batch_size: int) -> int:
    per_epoch = max(1, n // batch_size) if n > batch_size else 1
    return math.ceil(steps / per_epoch)


def adapt_encoder(encoder: Any, windows: np.ndarray, cfg: AdaptConfig) -> AdaptOutcome:
    """Train a deep copy of ``encoder`` on ``windows`` (N, C, L) or (N, C, H, W); the
    original is not touched. Raises FloatingPointError on a non-finite loss.

    Sets torch to one intra-op thread (process-wide), as the whole runtime runs: a
    second thread spin-waiting beside the decision loop made these small steps 10-50x
    slower on a busy 2-core machine, not faster.
    """
    import torch

    from common.augment.factory import augment_kind_for, make_augment
    from common.config import RunConfig
    from common.ssl.registry import METHODS, build_method
    from common.threads import set_torch_threads
    from common.train import make_optimizer, train_epochs

    set_torch_threads(1)

    x = np.ascontiguousarray(windows, dtype=np.float32)
    if x.ndim not in (3, 4) or len(x) < 2:
        raise AdaptError(f"need at least 2 windows (N, C, L) to adapt on, got shape {x.shape}")
    t0 = time.perf_counter()
    defaults = RunConfig()  # the federation's own defaults, e.g. SimCLR temperature 0.5
    hparams = {
        k.replace("-", "_"): getattr(defaults, k.replace("-", "_"))
        for k in METHODS[cfg.method].config_hparams
    }
    hparams.update(cfg.hparams)
    torch.manual_seed(cfg.seed)  # the fresh projector
    method = build_method(cfg.method, copy.deepcopy(encoder), **hparams)
    method.init_local_state()  # BYOL: the target starts as the online network
    augment = make_augment(augment_kind_for(tuple(x.shape[1:])))
    data = torch.from_numpy(x)
    evaluation = data[-EVAL_WINDOWS:]  # the newest windows: what the encoder must now serve
    batch = min(cfg.batch_size, len(x))

    encoder_params = list(method.encoder.parameters())
    for p in encoder_params:
        p.requires_grad_(False)
    steps = 0
    if cfg.warmup_steps:
        opt = make_optimizer(method, "adam", lr=cfg.warmup_lr)
        epochs = _epochs_for(cfg.warmup_steps, len(x), batch)
        steps += train_epochs(
            method, data, augment, epochs=epochs, batch_size=batch, optimizer=opt, seed=cfg.seed
        ).steps
    for p in encoder_params:
        p.requires_grad_(True)
    loss_before = _pretext_loss(method, evaluation, augment, cfg.seed + 1, batch)
    if cfg.steps:
        opt = make_optimizer(method, "adam", lr=cfg.lr)
        epochs = _epochs_for(cfg.steps, len(x), batch)
        steps += train_epochs(
            method, data, augment, epochs=epochs, batch_size=batch, optimizer=opt, seed=cfg.seed + 2
        ).steps
    loss_after = _pretext_loss(method, evaluation, augment, cfg.seed + 1, batch)
    adapted = method.encoder.eval()
    for p in adapted.parameters():
        p.requires_grad_(False)
    return AdaptOutcome(adapted, loss_before, loss_after, steps, time.perf_counter() - t0)


def embedder_for(encoder: Any, like: Embedder, example: np.ndarray, workdir: Path) -> Embedder:
    """An embedder of the same runtime as ``like`` around the torch ``encoder``.

    ONNX is re-exported (into ``workdir``) so the decision latency keeps its profile;
    an eager or TorchScript runtime continues with the eager module.
    """
    if isinstance(like, OnnxEmbedder):
        import torch

        from client.export import to_onnx

        data = to_onnx(encoder, torch.from_numpy(np.ascontiguousarray(example[:1])))
        fd, name = tempfile.mkstemp(dir=workdir, suffix=".onnx")
        with open(fd, "wb") as fh:
            fh.write(data)
        return OnnxEmbedder(name)
    return TorchEmbedder(encoder, like.input_shape, like.out_dim, kind="eager")
