"""Server optimizers on the aggregated delta: FedAvg(M), FedAdam and FedYogi (numpy only).

Reddi et al., "Adaptive Federated Optimization", ICLR 2021: the server treats the
clients' mean delta ``d`` as a pseudo-gradient step and applies its own optimizer to it,

- ``fedavg``: ``v = momentum * v + d``; ``x += lr * v`` (FedAvgM when momentum > 0,
  Hsu et al. 2019; plain FedAvg at momentum 0 and lr 1);
- ``fedadam``: ``m = b1 m + (1 - b1) d``; ``v = b2 v + (1 - b2) d^2``;
  ``x += lr * m / (sqrt(v) + tau)``;
- ``fedyogi``: as FedAdam, with ``v = v - (1 - b2) d^2 sign(v - d^2)`` (v grows more
  slowly, so the step shrinks less abruptly).

The step size follows a cosine from ``server-learning-rate`` in round 1 to
``server-learning-rate-final`` in the last round. FedAvg's default runs from 2 to 1: a
large early step makes up for the shrinkage of averaging many clients' deltas, plain
FedAvg's step at the end stops the model wandering (measured in the README).

Each sees only the mean delta, which is all SecAgg+ releases: secure aggregation is
unchanged. The state (velocity or moments) lives on the server and restarts from zero
when a run resumes. Every shared array is a float parameter (the encoders use
GroupNorm, with no running statistics), so the adaptive step applies to all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

Arrays = list[np.ndarray]


@dataclass(frozen=True)
class ServerOptConfig:
    name: str = "fedavg"
    lr: float = 1.0
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    tau: float = 1e-3
    lr_final: float = 0.0  # 0: the optimizer's default (make_server_optimizer)
    rounds: int = 1

    def round_lr(self, server_round: int) -> float:
        """The step size in ``server_round`` (1-based): cosine from lr to lr_final."""
        if self.lr_final == 0 or self.rounds <= 1:
            return self.lr
        progress = min(max(server_round - 1, 0) / (self.rounds - 1), 1.0)
        return self.lr_final + (self.lr - self.lr_final) * 0.5 * (1 + math.cos(math.pi * progress))


class ServerOptimizer:
    """Applies one aggregated delta per round to the global arrays (float64 inside)."""

    def __init__(self, cfg: ServerOptConfig, shapes: list[tuple[int, ...]]) -> None:
        self.cfg = cfg
        self.first = [np.zeros(s, dtype=np.float64) for s in shapes]  # velocity or m
        self.lr = cfg.lr

    def step(self, global_arrays: Arrays, mean_delta: Arrays, server_round: int = 1) -> Arrays:
        """The new global arrays (float32) after the delta ``mean_delta``."""
        self.lr = self.cfg.round_lr(server_round)
        out = []
        for i, (g, d) in enumerate(zip(global_arrays, mean_delta, strict=True)):
            d = np.asarray(d, dtype=np.float64).reshape(g.shape)
            out.append((g.astype(np.float64) + self._update(i, d)).astype(np.float32))
        return out

    def _update(self, i: int, d: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class FedAvgM(ServerOptimizer):
    def _update(self, i: int, d: np.ndarray) -> np.ndarray:
        self.first[i] = self.cfg.momentum * self.first[i] + d
        return self.lr * self.first[i]


class FedAdam(ServerOptimizer):
    def __init__(self, cfg: ServerOptConfig, shapes: list[tuple[int, ...]]) -> None:
        super().__init__(cfg, shapes)
        self.second = [np.zeros(s, dtype=np.float64) for s in shapes]  # v

    def _second(self, i: int, d2: np.ndarray) -> np.ndarray:
        return self.cfg.beta2 * self.second[i] + (1 - self.cfg.beta2) * d2

    def _update(self, i: int, d: np.ndarray) -> np.ndarray:
        c = self.cfg
        self.first[i] = c.beta1 * self.first[i] + (1 - c.beta1) * d
        self.second[i] = self._second(i, d * d)
        return self.lr * self.first[i] / (np.sqrt(self.second[i]) + c.tau)


class FedYogi(FedAdam):
    def _second(self, i: int, d2: np.ndarray) -> np.ndarray:
        v = self.second[i]
        return v - (1 - self.cfg.beta2) * d2 * np.sign(v - d2)


SERVER_OPTIMIZERS: dict[str, Callable[[ServerOptConfig, list[tuple[int, ...]]], ServerOptimizer]]
SERVER_OPTIMIZERS = {"fedavg": FedAvgM, "fedadam": FedAdam, "fedyogi": FedYogi}
DEFAULT_LR = {"fedavg": 2.0, "fedadam": 0.01, "fedyogi": 0.01}  # server-learning-rate 0
# server-learning-rate-final 0: fedavg ends at plain FedAvg's step; the others keep theirs
DEFAULT_LR_FINAL = {"fedavg": 1.0}


def make_server_optimizer(cfg: ServerOptConfig, shapes: list[tuple[int, ...]]) -> ServerOptimizer:
    """The optimizer ``cfg.name``; lr 0 and lr_final 0 take its defaults."""
    if cfg.name not in SERVER_OPTIMIZERS:
        known = list(SERVER_OPTIMIZERS)
        raise ValueError(f"unknown server optimizer {cfg.name!r}; choose one of {known}")
    if cfg.lr == 0:
        cfg = replace(cfg, lr=DEFAULT_LR[cfg.name])
    if cfg.lr_final == 0:
        cfg = replace(cfg, lr_final=DEFAULT_LR_FINAL.get(cfg.name, cfg.lr))
    return SERVER_OPTIMIZERS[cfg.name](cfg, shapes)
