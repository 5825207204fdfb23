"""Drift adaptation in a worker process (the live agent's niced one), not in a thread.

``DeviceRuntime`` given a process pool (``worker=``) sends an ONNX runtime's adaptation
job here: the encoder copy, the replay buffer's windows and the labeled windows go to
the worker, which adapts the encoder, re-exports it to ONNX (into the runtime's work
folder), re-embeds and rebuilds the head, projection, drift reference and bandit
exactly as the thread would (``DeviceRuntime._prepare``), and sends back the ONNX
file's path and the learned parts; the runtime opens the session in its helper thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AdaptJob:
    config: Any  # client.runtime.settings.RuntimeConfig
    n_actions: int
    encoder: Any | None  # a copy of the torch encoder to adapt; None: refit only
    onnx: str  # the runtime's current ONNX file
    calib: tuple[np.ndarray, np.ndarray]
    snapshot: list[Any]  # client.runtime.replay.Logged
    workdir: str


def run_adapt_job(job: AdaptJob) -> dict[str, Any]:
    """In the worker: the adapted (or refitted) model's parts, and its ONNX file."""
    from client.runtime.device_loop import DeviceRuntime
    from client.runtime.encoders import OnnxEmbedder

    embedder = OnnxEmbedder(job.onnx)
    rt = DeviceRuntime(embedder, job.n_actions, job.config)
    rt._calib = job.calib  # noqa: SLF001 (the same class's job, run in another process)
    prep = rt._prepare(job.snapshot, job.encoder, embedder, None, Path(job.workdir))  # noqa: SLF001
    m = prep.model
    assert isinstance(m.embedder, OnnxEmbedder)  # an ONNX runtime stays ONNX (embedder_for)
    return {
        "onnx": str(m.embedder.path),
        "parts": (m.torch_encoder, m.projection, m.policy, m.head, m.drift),
        "last_step": prep.last_step,
        "outcome": prep.outcome,
        "seconds": prep.seconds,
    }
