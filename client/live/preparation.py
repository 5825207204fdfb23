"""A runtime for a newly delivered encoder, prepared in a niced process of its own.

Preparing is heavy Python: exporting the encoder to ONNX, checking the export's parity,
embedding the labeled windows, fitting the head, the projection, the drift reference
and the warm bandit. In a thread of the agent it would share the interpreter lock with
the decisions. ``Preparer`` runs it in one worker process (started once, ``nice``
10), which reads the window store and the delivered encoder from the state folder and
sends back only what the runtime learned (``DeviceRuntime.snapshot``) and the ONNX
file's path; the agent then opens the ONNX session and swaps.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context, parent_process
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import EXIT_ERROR, BadInputError

PREPARE_NICE = 10
AGENT_FOLDER = "agent"  # the encoders the agent decides with (copies of global/'s)


@dataclass(frozen=True)
class Job:
    state_dir: Path
    shape: tuple[int, ...]
    n_actions: int
    runtime: Any  # client.runtime.settings.RuntimeConfig
    labels_per_class: int


def require_two_classes(classes: int) -> None:
    """An agent decides only once it has seen labeled windows of two classes."""
    if classes < 2:
        raise BadInputError(
            f"labeled windows of {classes} class(es) seen; two are needed to decide"
        )


def calibration(x: np.ndarray, y: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` labeled windows of each class, in time order."""
    first = [np.flatnonzero(y == c)[:per_class] for c in np.unique(y[y >= 0])]
    require_two_classes(len(first))
    idx = np.sort(np.concatenate(first))
    return x[idx], y[idx]


def prepare(job: Job) -> dict[str, Any]:
    """In the worker: the delivered encoder, exported and personalized (see the module)."""
    from client.delivery import ENCODER_FILE, GLOBAL_DIR, META_FILE
    from client.export import export_encoder
    from client.live.window_store import STORE_FOLDER, read_store
    from client.runtime.device_loop import DeviceRuntime
    from common.atomic import atomic_write_bytes

    t0 = time.perf_counter()
    x, y = calibration(*read_store(job.state_dir / STORE_FOLDER), job.labels_per_class)
    folder = job.state_dir / GLOBAL_DIR
    meta = json.loads((folder / META_FILE).read_text())
    payload = (folder / ENCODER_FILE).read_bytes()  # checked: a delivery may replace it
    if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
        raise RuntimeError("the delivered encoder is being replaced; trying again")
    rnd = int(meta["round"])
    out = job.state_dir / AGENT_FOLDER
    out.mkdir(exist_ok=True, mode=0o700)
    path, onnx = out / f"encoder-{rnd}.pt", out / f"encoder-{rnd}.onnx"
    atomic_write_bytes(path, payload)
    manifest = export_encoder(path, "onnx", onnx, input_shape=job.shape)  # ParityError
    rt = DeviceRuntime.load(onnx, job.n_actions, job.runtime, torch_encoder_path=path)
    rt.fit_head(x, y)
    return {
        "round": rnd,
        "onnx": str(onnx),
        "parity": manifest.parity_max_abs or 0.0,
        "snapshot": rt.snapshot(),
        "seconds": time.perf_counter() - t0,
    }


def _start_worker(nice: int) -> None:
    """The worker's initializer: a lower priority, and an end when the agent dies. A
    killed agent cannot shut the pool down, and the worker would wait on its queue
    forever (it holds both ends of the queue's pipe), keeping the encoder in memory.
    Not prctl's death signal (``common.processes``, for the daemons' children): that
    fires when the spawning *thread* ends, and only on Linux; the parent's sentinel
    is the agent process itself, on every platform."""
    os.nice(nice)
    agent = parent_process()
    if agent is not None:
        threading.Thread(target=_exit_with, args=(agent,), name="agent-watch", daemon=True).start()


def _exit_with(agent: BaseProcess) -> None:
    agent.join()  # returns when the agent process has ended, however it ended
    os._exit(EXIT_ERROR)  # no one is left to read it


def warm_up() -> None:
    """Import what a preparation or an adaptation needs, once, before the first job."""
    import client.export  # noqa: F401
    import client.runtime.device_loop  # noqa: F401


class Preparer:
    """One niced worker process for the agent's preparations (spawned, not forked: the
    agent has threads)."""

    def __init__(self, nice: int = PREPARE_NICE) -> None:
        self.pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=get_context("spawn"),
            initializer=_start_worker,
            initargs=(nice,),
        )
        self.pool.submit(warm_up)

    def submit(self, job: Job) -> Future[dict[str, Any]]:
        return self.pool.submit(prepare, job)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
