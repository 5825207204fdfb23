"""One client's share of a round: start from the global weights, train, return the delta.

Framework-free on purpose: the Flower ClientApp, the device runtime and the
centralized baselines all call this, so the training they do is the same.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from common.augment.factory import make_augment
from common.client_state import ClientState, pack_state, unpack_state
from common.config import RunConfig
from common.data.errors import DataError
from common.fedalgo.base import FedAlgorithm
from common.fedalgo.registry import build_fed_algorithm
from common.models.registry import build_encoder, default_arch_for
from common.privacy.clipping import clip_l2, l2_norm
from common.serialize import arrays_to_state, state_to_arrays
from common.ssl.base import SSLMethod
from common.ssl.registry import METHODS, build_method
from common.train import make_optimizer, train_epochs
from common.wire_vector import WireShapeError, unflatten

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


def global_from_wire(
    cfg: RunConfig, input_shape: tuple[int, ...], vector: np.ndarray, partition_id: int
) -> list[np.ndarray]:
    """The global shared weights a training message carries as one flat vector
    (``common.wire_vector``), shaped for a model of this device's input shape."""
    shapes = [a.shape for a in initial_global_arrays(cfg, input_shape)]
    try:
        return unflatten(vector, shapes)
    except WireShapeError as exc:
        raise DataError(
            f"client {partition_id}: local samples of shape {input_shape} do not fit the "
            f"global encoder ({exc}); the device's data must match the run's data set"
        ) from None


def method_from_arrays(
    cfg: RunConfig, input_shape: tuple[int, ...], arrays: list[np.ndarray]
) -> SSLMethod:
    """The SSL method at the global weights, its local state freshly derived from them (a
    device's view of the global model, e.g. BYOL's target = the global online network)."""
    method, _, _ = build_model(cfg, input_shape)
    state = arrays_to_state(arrays, shared_keys(cfg, method), method.state_dict())
    method.load_state_dict(state, strict=False)
    method.init_local_state()
    return method.eval()


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

    Raises FloatingPointError when the data or the delta is not finite: such an update
    must not leave the device (a NaN would poison the secure sum for everyone).
    """
    t0 = time.perf_counter()
    who = f"client {partition_id}, round {server_round}"
    _check_finite_inputs(x, who)
    device = resolve_device(cfg.device)
    start = _start(cfg, x, global_arrays, state, partition_id, device)
    lr = cfg.round_learning_rate(server_round)
    for group in start.optimizer.param_groups:
        group["lr"] = lr
    start.method.on_global_update()
    augment = make_augment("sensor" if x.ndim == 3 else "image", cfg.augment_strength).to(device)
    result = train_epochs(
        start.method,
        x,
        augment,
        epochs=cfg.local_epochs,
        batch_size=cfg.batch_size,
        optimizer=start.optimizer,
        device=device,
        seed=client_seed(cfg.seed, server_round, partition_id),
        max_steps=cfg.local_steps,
    )
    delta = _finite_delta(start, global_arrays, who)
    delta_norm = l2_norm(delta)
    delta, metrics = _declared_metrics(cfg, delta, len(x), result.loss)
    local = {
        "first-loss": result.first_loss,
        "steps": result.steps,
        "learning-rate": lr,
        "delta-norm": delta_norm,  # before DP clipping
        "seconds": time.perf_counter() - t0,
        **start.fed_info,
    }
    if state is not None and start.saved is None:
        local["state-discarded"] = 1  # saved under another fed-algorithm
    kept = start.optimizer if cfg.keep_optimizer_state else None
    blob = pack_state(start.method.cpu(), kept, start.algo)
    return LocalRoundResult(delta, len(x), metrics, blob, local_metrics=local)


def _check_finite_inputs(x: np.ndarray, who: str) -> None:
    bad_inputs = int(x.size - np.isfinite(x).sum())
    if bad_inputs:
        raise FloatingPointError(
            f"{who}: local data has {bad_inputs} non-finite values; nothing trained or sent"
        )


@dataclass
class _Start:
    """The model a round trains: the method at its start weights, its optimizer."""

    method: SSLMethod
    algo: FedAlgorithm
    keys: list[str]
    optimizer: torch.optim.Optimizer
    saved: ClientState | None
    fed_info: dict[str, float]


def _start(
    cfg: RunConfig,
    x: np.ndarray,
    global_arrays: list[np.ndarray],
    state: bytes | None,
    partition_id: int,
    device: torch.device,
) -> _Start:
    """Where this round starts: the algorithm merges the global weights with what the
    client kept (FedAvg: the global weights; FedEMA: a blend with its own; FedU: the
    global encoder with a local predictor), and the client's local state is restored."""
    method, _, _ = build_model(cfg, tuple(x.shape[1:]))
    algo = fed_algorithm(cfg)
    keys = algo.shared_keys(method)
    saved = unpack_state(state, algo) if state is not None else None
    if saved is not None:
        algo.load_state_dict(saved.algorithm)
    try:
        global_weights = arrays_to_state(global_arrays, keys, method.state_dict())
    except ValueError as exc:
        raise DataError(
            f"client {partition_id}: local samples of shape {tuple(x.shape[1:])} do not fit the "
            f"global encoder ({exc}); the device's data must match the run's data set"
        ) from None
    start, fed_info = algo.merge(global_weights, saved.shared if saved is not None else None)
    method.load_state_dict(start, strict=False)
    method.to(device)
    optimizer = make_optimizer(method, "adam", lr=cfg.learning_rate)
    if saved is not None:
        method.load_state_dict(saved.local, strict=False)
        if saved.optimizer:
            optimizer.load_state_dict(saved.optimizer)
    else:
        method.init_local_state()
    return _Start(method, algo, keys, optimizer, saved, fed_info)


def _finite_delta(start: _Start, global_arrays: list[np.ndarray], who: str) -> list[np.ndarray]:
    new = state_to_arrays(start.method.state_dict(), start.keys)
    delta = [
        n - g.astype(np.float32).reshape(n.shape) for n, g in zip(new, global_arrays, strict=True)
    ]
    if not all(np.isfinite(d).all() for d in delta):
        bad = sum(int((~np.isfinite(d)).sum()) for d in delta)
        raise FloatingPointError(f"{who}: update has {bad} non-finite values; not sent")
    return delta


def _declared_metrics(
    cfg: RunConfig, delta: list[np.ndarray], n: int, loss: float
) -> tuple[list[np.ndarray], dict[str, float | int]]:
    """DP clipping of the delta, and the only scalars that travel in clear beside it
    (with num_examples); everything else stays in the device's own log."""
    metrics: dict[str, float | int] = {"train-loss": loss}
    if cfg.dp_clipping:
        # Central DP (DP-FedAvg): bound this client's influence on the sum to L2 norm C
        # before the update leaves the device; the server's noise is calibrated to C.
        delta, clipped = clip_l2(delta, cfg.dp_clipping_norm)
        metrics["dp-clipped"] = int(clipped)
    if cfg.secure_aggregation:
        # SecAgg+ clips silently at ±clipping-range after scaling by n / max-weight
        # (by 1 under DP clipping: every client then counts as max-weight).
        ratio = n / cfg.max_weight if cfg.max_weight > 0 and not cfg.dp_clipping else 1.0
        metrics["clipped-values"] = sum(
            int((np.abs(d) * ratio > cfg.clipping_range).sum()) for d in delta
        )
    return delta, metrics
