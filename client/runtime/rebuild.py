"""Everything downstream of the encoder, rebuilt: in the loop's helper thread or in a
worker process.

``build_model`` fits, from fresh embeddings, the PCA projection the bandit sees (from
the labeled windows only: they cover every class evenly, while recent windows are
mostly one activity, whose within-class variance a refit PCA would whiten into the
bandit's context), the drift reference, the head and the warm-started bandit, then
feeds the bandit the logged decisions. ``prepare_model`` is the adaptation job: adapt
a copy of the encoder (maybe), re-embed, rebuild; it touches no live state.
``run_adapt_job`` runs that job in a worker process (``DeviceRuntime(worker=)``, the
live agent's niced one) for an ONNX runtime: it sends back the re-exported ONNX file's
path and the model's parts, and the runtime opens the session itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from client.runtime.adaptation import adapt_encoder, embedder_for
from client.runtime.bandit import LinearThompson, LinUCB, Policy, RandomPolicy
from client.runtime.drift import DriftDetector
from client.runtime.encoders import Embedder, OnnxEmbedder
from client.runtime.head import PersonalHead
from client.runtime.projection import PCAProjection
from client.runtime.replay import Logged, stack_windows
from client.runtime.settings import DeviceError, RuntimeConfig

DRIFT_NEIGHBOURS = 5  # k of the drift detector's neighbourhood-density score


@dataclass
class Model:
    """Everything that depends on the encoder; swapped as one."""

    embedder: Embedder
    torch_encoder: Any | None
    projection: PCAProjection
    policy: Policy
    head: PersonalHead
    drift: DriftDetector | None

    def parts(self) -> tuple[Any, ...]:
        """Everything but the embedder, whose ONNX session can be neither pickled nor
        saved: what a snapshot keeps and what a worker process sends back."""
        return (self.torch_encoder, self.projection, self.policy, self.head, self.drift)

    @classmethod
    def on(cls, embedder: Embedder, parts: tuple[Any, ...]) -> Model:
        return cls(embedder, *parts)


@dataclass
class Prepared:
    model: Model
    last_step: int
    outcome: Any | None
    seconds: float


def make_policy(cfg: RuntimeConfig, n_actions: int, dim: int) -> Policy:
    if cfg.policy == "linucb":
        return LinUCB(n_actions, dim, alpha=cfg.alpha)
    if cfg.policy == "thompson":
        return LinearThompson(n_actions, dim, v=cfg.thompson_v, seed=cfg.seed)
    return RandomPolicy(n_actions, seed=cfg.seed)


def build_model(
    cfg: RuntimeConfig,
    n_actions: int,
    embedder: Embedder,
    torch_encoder: Any | None,
    z_cal: np.ndarray,
    y_cal: np.ndarray,
    z_recent: np.ndarray | None,
    logged: list[Logged],
    head: PersonalHead | None = None,
) -> Model:
    """Projection, drift reference, head and warm bandit from fresh embeddings."""
    dim = min(cfg.proj_dim, z_cal.shape[1], len(z_cal) - 1)
    if dim < 1:
        raise DeviceError(f"need at least 2 labeled windows, got {len(z_cal)}")
    projection = PCAProjection.fit(z_cal, dim)
    ref = z_cal if z_recent is None else np.concatenate([z_cal, z_recent])
    neighbours = min(DRIFT_NEIGHBOURS, len(ref) // 10)
    drift = None
    if neighbours >= 1:
        drift = DriftDetector.fit(ref, neighbours=neighbours, threshold=cfg.drift_threshold)
    policy = make_policy(cfg, n_actions, projection.dim)
    if cfg.warm_start and cfg.policy != "random":
        for c, label in zip(projection.transform(z_cal), y_cal, strict=True):
            for a in range(n_actions):
                policy.update(c, a, float(a == label))
    if logged and z_recent is not None:
        contexts = projection.transform(z_recent[-len(logged) :])
        for c, item in zip(contexts, logged, strict=True):
            policy.update(c, item.action, item.reward)
    head = head if head is not None else PersonalHead().fit(z_cal, y_cal)
    return Model(embedder, torch_encoder, projection, policy, head, drift)


@dataclass(frozen=True)
class AdaptJob:
    """An adaptation: what ``prepare_model`` needs besides the current embedder."""

    config: RuntimeConfig
    n_actions: int
    encoder: Any | None  # a copy of the torch encoder to adapt; None: refit only
    onnx: str  # the runtime's ONNX file ("" when not ONNX): a worker process opens it
    calib: tuple[np.ndarray, np.ndarray]
    snapshot: list[Logged]
    workdir: str


def prepare_model(job: AdaptJob, embedder: Embedder, torch_encoder: Any | None) -> Prepared:
    """Adapt (maybe), re-embed, rebuild. Touches no live state."""
    t0 = time.perf_counter()
    calib_x, calib_y = job.calib
    windows = stack_windows(job.snapshot)
    outcome = None
    if job.encoder is not None:
        outcome = adapt_encoder(job.encoder, windows, job.config.adapt)
        embedder = embedder_for(outcome.encoder, embedder, windows, Path(job.workdir))
        torch_encoder = outcome.encoder
    z_cal = embedder.embed(calib_x)
    z_recent = embedder.embed(windows)
    model = build_model(
        job.config, job.n_actions, embedder, torch_encoder, z_cal, calib_y, z_recent,
        job.snapshot,
    )  # fmt: skip
    return Prepared(model, job.snapshot[-1].step, outcome, time.perf_counter() - t0)


def run_adapt_job(job: AdaptJob) -> dict[str, Any]:
    """In a worker process: ``prepare_model`` on the runtime's ONNX file; the re-exported
    file's path and the model's parts go back (an ONNX session cannot travel)."""
    prep = prepare_model(job, OnnxEmbedder(job.onnx), None)
    assert isinstance(prep.model.embedder, OnnxEmbedder)  # ONNX stays ONNX (embedder_for)
    return {
        "onnx": str(prep.model.embedder.path),
        "parts": prep.model.parts(),
        "last_step": prep.last_step,
        "outcome": prep.outcome,
        "seconds": prep.seconds,
    }
