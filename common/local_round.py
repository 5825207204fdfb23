"""One client's share of a round: start from the global weights, train, return the delta.

Framework-free on purpose: the Flower ClientApp, the device runtime and the
centralized baselines all call this, so the training they do is the same.
"""

from __future__ import annotations

import io
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from common.augment.factory import make_augment
from common.config import RunConfig
from common.data.errors import DataError
from common.fedalgo.base import FedAlgorithm, Weights
from common.fedalgo.registry import build_fed_algorithm
from common.models.registry import build_encoder, default_arch_for
from common.privacy.clipping import clip_l2, l2_norm
from common.serialize import arrays_to_state, state_to_arrays
from common.ssl.base import SSLMethod
from common.ssl.registry import METHODS, build_method
from common.train import make_optimizer, train_epochs

ENCODER_PREFIX = "encoder."


@dataclass
class LocalRoundResult:
    delta: list[np.ndarray]
    num_examples: int
    metrics: dict[str, float | int]  # sent to the server in clear: keep to declared scalars
    state: bytes  # per-client state to keep on the device until the next round
    local_metrics: dict[str, float | int] = field(default_factory=dict)  # never sent


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def build_model(
    cfg: RunConfig, input_shape: tuple[int, ...]
) -> tuple[SSLMethod, str, dict[str, Any]]:
    """The SSL method around a freshly initialised encoder, seeded by ``cfg.seed``."""
    arch, hparams = default_arch_for(tuple(input_shape))
    torch.manual_seed(cfg.seed)
    encoder = build_encoder(arch, **hparams)
    method_cls = METHODS[cfg.method]
    kwargs = {
        k.replace("-", "_"): getattr(cfg, k.replace("-", "_")) for k in method_cls.config_hparams
    }
    return build_method(cfg.method, encoder, **kwargs), arch, hparams


def fed_algorithm(cfg: RunConfig) -> FedAlgorithm:
    """The client-side federated algorithm of ``cfg``, with its hyper-parameters."""
    hparams: dict[str, dict[str, float]] = {
        "fedema": {"tau": cfg.fedema_tau},
        "fedu": {"threshold": cfg.fedu_threshold},
    }
    return build_fed_algorithm(cfg.fed_algorithm, **hparams.get(cfg.fed_algorithm, {}))


def shared_keys(cfg: RunConfig, method: SSLMethod) -> list[str]:
    """The wire order of the shared weights: the same on the server and on every client,
    because it depends on the method, the algorithm and the input shape only."""
    return fed_algorithm(cfg).shared_keys(method)


def initial_global_arrays(cfg: RunConfig, input_shape: tuple[int, ...]) -> list[np.ndarray]:
    method, _, _ = build_model(cfg, input_shape)
    return state_to_arrays(method.state_dict(), shared_keys(cfg, method))


def encoder_state_from_arrays(
    cfg: RunConfig, input_shape: tuple[int, ...], arrays: list[np.ndarray]
) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    """The encoder's own state dict (projector etc. dropped) from the shared arrays."""
    method, arch, hparams = build_model(cfg, input_shape)
    keys = shared_keys(cfg, method)
    state = arrays_to_state(arrays, keys, method.state_dict())
    enc = {k[len(ENCODER_PREFIX) :]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    return enc, arch, hparams


def encoder_from_arrays(
    cfg: RunConfig, input_shape: tuple[int, ...], arrays: list[np.ndarray]
) -> tuple[nn.Module, str, dict[str, Any]]:
    """A ready encoder (eval mode) rebuilt from the shared arrays, with its arch and hparams."""
    state, arch, hparams = encoder_state_from_arrays(cfg, input_shape, arrays)
    encoder = build_encoder(arch, **hparams)
    encoder.load_state_dict(state)
    return encoder.eval(), arch, hparams


@dataclass
class ClientState:
    """What a client keeps between its rounds (one blob in ``context.state`` / on disk)."""

    local: Weights  # the weights never sent: BYOL target and counters, local predictors
    optimizer: dict[str, Any]  # optimizer moments
    shared: Weights | None  # its shared weights after training, when the algorithm needs them
    algorithm: dict[str, float]  # the algorithm's own scalars (FedEMA's scaler)


def _pack_state(method: SSLMethod, optimizer: torch.optim.Optimizer, algo: FedAlgorithm) -> bytes:
    full = method.state_dict()
    shared = algo.shared_keys(method)
    payload = {
        "local": {k: full[k].detach().cpu() for k in algo.local_keys(method)},
        "optimizer": optimizer.state_dict(),
        "fed-algorithm": algo.name,
        "shared": (
            {k: full[k].detach().cpu().clone() for k in shared}
            if algo.keeps_local_weights
            else None
        ),
        "algorithm": algo.state_dict(),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def _unpack_state(blob: bytes, algo: FedAlgorithm) -> ClientState | None:
    """The saved state, or None when it was written under another fed-algorithm: its
    shared/local split and its extra state mean something else, so the client starts
    afresh, as at its first participation."""
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if payload.get("fed-algorithm", "fedavg") != algo.name:
        return None
    return ClientState(
        local=payload["local"],
        optimizer=payload["optimizer"],
        shared=payload.get("shared"),
        algorithm=payload.get("algorithm") or {},
    )


def client_seed(seed: int, server_round: int, partition_id: int) -> int:
    return zlib.crc32(f"{seed}/{server_round}/{partition_id}".encode()) & 0x7FFFFFFF


def run_local_round(
    cfg: RunConfig,
    x: np.ndarray,
    global_arrays: list[np.ndarray],
    state: bytes | None,
    *,
    server_round: int,
    partition_id: int,
) -> LocalRoundResult:
    """Train ``cfg.local_epochs`` on ``x`` from the global weights; return the delta.

    Raises FloatingPointError when the delta is not finite: such an update must not
    leave the device (a NaN would poison the secure sum for everyone).
    """
    t0 = time.perf_counter()
    bad_inputs = int(x.size - np.isfinite(x).sum())
    if bad_inputs:
        raise FloatingPointError(
            f"client {partition_id}, round {server_round}: local data has {bad_inputs} "
            "non-finite values; nothing trained or sent"
        )
    device = resolve_device(cfg.device)
    method, _, _ = build_model(cfg, tuple(x.shape[1:]))
    algo = fed_algorithm(cfg)
    keys = algo.shared_keys(method)
    saved = _unpack_state(state, algo) if state is not None else None
    if saved is not None:
        algo.load_state_dict(saved.algorithm)
    try:
        global_weights = arrays_to_state(global_arrays, keys, method.state_dict())
    except ValueError as exc:
        raise DataError(
            f"client {partition_id}: local samples of shape {tuple(x.shape[1:])} do not fit the "
            f"global encoder ({exc}); the device's data must match the run's data set"
        ) from None
    # The algorithm decides where this round starts: the global weights (FedAvg), a blend
    # with the client's own (FedEMA), or the global encoder with a local predictor (FedU).
    start, fed_info = algo.merge(global_weights, saved.shared if saved is not None else None)
    method.load_state_dict(start, strict=False)
    method.to(device)
    optimizer = make_optimizer(method, "adam", lr=cfg.learning_rate)
    if saved is not None:
        method.load_state_dict(saved.local, strict=False)
        optimizer.load_state_dict(saved.optimizer)
    else:
        method.init_local_state()
    lr = cfg.round_learning_rate(server_round)
    for group in optimizer.param_groups:
        group["lr"] = lr
    method.on_global_update()
    augment = make_augment("sensor" if x.ndim == 3 else "image").to(device)
    result = train_epochs(
        method,
        x,
        augment,
        epochs=cfg.local_epochs,
        batch_size=cfg.batch_size,
        optimizer=optimizer,
        device=device,
        seed=client_seed(cfg.seed, server_round, partition_id),
    )
    new = state_to_arrays(method.state_dict(), keys)
    delta = [
        n - g.astype(np.float32).reshape(n.shape) for n, g in zip(new, global_arrays, strict=True)
    ]
    finite = all(np.isfinite(d).all() for d in delta)
    if not finite:
        bad = sum(int((~np.isfinite(d)).sum()) for d in delta)
        raise FloatingPointError(
            f"client {partition_id}, round {server_round}: update has {bad} non-finite values; "
            "not sent"
        )
    delta_norm = l2_norm(delta)
    # Only these scalars travel in clear beside the masked delta (with num_examples);
    # the rest stays in the device's own log.
    metrics: dict[str, float | int] = {"train-loss": result.loss}
    if cfg.dp_clipping:
        # Central DP (DP-FedAvg): bound this client's influence on the sum to L2 norm C
        # before the update leaves the device; the server's noise is calibrated to C.
        delta, clipped = clip_l2(delta, cfg.dp_clipping_norm)
        metrics["dp-clipped"] = int(clipped)
    if cfg.secure_aggregation:
        # SecAgg+ clips silently at ±clipping-range after scaling by n / max-weight
        # (by 1 under DP clipping: every client then counts as max-weight).
        ratio = len(x) / cfg.max_weight if cfg.max_weight > 0 and not cfg.dp_clipping else 1.0
        metrics["clipped-values"] = sum(
            int((np.abs(d) * ratio > cfg.clipping_range).sum()) for d in delta
        )
    local = {
        "first-loss": result.first_loss,
        "steps": result.steps,
        "learning-rate": lr,
        "delta-norm": delta_norm,  # before DP clipping
        "seconds": time.perf_counter() - t0,
        **fed_info,
    }
    if state is not None and saved is None:
        local["state-discarded"] = 1  # saved under another fed-algorithm
    return LocalRoundResult(
        delta, len(x), metrics, _pack_state(method.cpu(), optimizer, algo), local_metrics=local
    )
