"""``DeviceRuntime``: the global encoder driving one device's real-time decisions (docs/architecture.md, "The device loop").

One object composes the runtime pieces (embedder, head, projection, bandit, drift
detector) into the loop a device runs, one window at a time::

    rt = DeviceRuntime.load("encoder.onnx", n_actions=6, torch_encoder_path="encoder.pt")
    rt.fit_head(labeled_x, labeled_y)          # the user's few labels personalize it all
    for window in stream:
        rt.maintain()                          # between windows: start / swap an adaptation
        action = rt.decide(window)             # embed, project, bandit choice
        rt.update(window, action, reward)      # bandit update, replay buffer, drift check

Personalization. ``fit_head`` embeds the labeled windows once and fits, from them alone:
the head (``PersonalHead``), the PCA projection the bandit sees (whitened, at most
``proj_dim`` dims), the drift detector's reference, and, with ``warm_start``, the bandit
itself: a labeled window tells the reward of every action (1 for its label, 0 for the
others), so each becomes one full-information update per action.

Drift and adaptation. When the detector fires, the runtime keeps deciding for
``adapt_after`` more windows, so the replay buffer (the last ``buffer_size`` windows with
their logged action and reward) holds some of the new input, then starts a job in a
background thread (``on_drift``):

- ``adapt``: a few pretext-loss steps on a copy of the torch encoder
  (``client.runtime.adaptation``), re-exported to ONNX when the runtime runs ONNX;
  falls back to ``refit`` when there is no torch encoder (an export loaded without its
  ``encoder.pt``, raw features): the event's ``note`` says so;
- ``refit``: the encoder stays as it is;
- ``none``: alarms are recorded, nothing else.

Either job then rebuilds everything downstream of the encoder on fresh embeddings:

- the drift reference: the labeled windows plus the buffer (the current input, with
  the user's labeled activities so that the reference still covers them);
- the head and the projection: the labeled windows alone. They cover every class
  evenly; recent windows are mostly one activity, and a PCA refit on them whitens that
  activity's within-class variance into the bandit's context (on HAPT users 22-30 such
  refits cost 3-4 points of reward);
- a new bandit, warm-started again, then fed the buffer's logged (window, action,
  reward) in order: it keeps what it learned lately, in the new feature space; older
  feedback is dropped, which after a drift is a feature.

Decisions go on with the old components meanwhile. ``maintain()`` swaps the result in
between two windows, after replaying into the new bandit the decisions made while the
job ran (``catch_up``, ``swap_ms``). One job at a time: alarms meanwhile are recorded
but start nothing.

Threads: torch runs on one intra-op thread (``adapt_encoder`` sets it), ONNX Runtime on
one; the job competes with the decision loop for the CPU only while it trains.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import time
import weakref
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from client.runtime.encoders import Embedder, OnnxEmbedder, TorchEmbedder, load_embedder
from client.runtime.head import PersonalHead
from client.runtime.rebuild import (
    AdaptJob,
    Model,
    Prepared,
    build_model,
    prepare_model,
    run_adapt_job,
)
from client.runtime.replay import ReplayBuffer, stack_windows
from client.runtime.settings import (
    AdaptationEvent,
    DeviceError,
    HeadFit,
    RuntimeConfig,
)

log = logging.getLogger("fedssl")


@dataclass
class _Pending:
    alarm_step: int
    launch_step: int


def _labels(y: np.ndarray, n: int, n_actions: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.shape != (n,):
        raise DeviceError(f"expected {n} labels (N,), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise DeviceError(f"labels must be integers, got dtype {arr.dtype}")
    if n and (arr.min() < 0 or arr.max() >= n_actions):
        raise DeviceError(
            f"labels must be actions in [0, {n_actions}), got values "
            f"{sorted(set(arr[(arr < 0) | (arr >= n_actions)].tolist()))[:5]}"
        )
    return arr.astype(np.int64)


class DeviceRuntime:
    """The decision loop of one device; see the module docstring."""

    def __init__(
        self,
        embedder: Embedder,
        n_actions: int,
        config: RuntimeConfig | None = None,
        *,
        torch_encoder: Any | None = None,
        worker: Executor | None = None,
    ) -> None:
        if n_actions < 2:
            raise DeviceError(f"need at least 2 actions, got {n_actions}")
        self.config = config or RuntimeConfig()
        self.n_actions = int(n_actions)
        self.input_shape = tuple(embedder.input_shape)
        self.buffer = ReplayBuffer(self.config.buffer_size)
        self.steps = 0
        self.alarms: list[int] = []
        self.events: list[AdaptationEvent] = []
        self.last_embed_ns = 0
        self.head_fit: HeadFit | None = None
        self._embedder = embedder  # until fit_head builds the model
        self._torch_encoder = torch_encoder
        if torch_encoder is None and isinstance(embedder, TorchEmbedder):
            if embedder.kind == "eager":  # the module itself: adapted on a copy
                self._torch_encoder = embedder.module
        self._model: Model | None = None
        self._calib: tuple[np.ndarray, np.ndarray] | None = None
        self._last: tuple[Any, Model, np.ndarray, np.ndarray] | None = None
        self._pending: _Pending | None = None
        self._future: Future[Prepared] | None = None
        self._event: AdaptationEvent | None = None
        self._launched_at = 0.0
        self._executor: ThreadPoolExecutor | None = None
        # A process pool (the live agent's niced worker): adaptation of an ONNX runtime
        # then trains there, not in a thread beside the decisions (run_adapt_job).
        self._worker = worker
        self._workdir: Path | None = None

    @classmethod
    def load(
        cls,
        path: str | Path,
        n_actions: int,
        config: RuntimeConfig | None = None,
        *,
        torch_encoder_path: str | Path | None = None,
        input_shape: tuple[int, ...] | None = None,
    ) -> DeviceRuntime:
        """Load an encoder file or its export (``load_embedder``); ``torch_encoder_path``
        names the ``encoder.pt`` an export came from, which makes adaptation possible."""
        embedder = load_embedder(path, input_shape=input_shape)
        torch_encoder = None
        if torch_encoder_path is not None:
            from common.serialize import CheckpointError, load_encoder

            try:
                torch_encoder = load_encoder(torch_encoder_path)
            except CheckpointError as exc:
                raise DeviceError(str(exc)) from None
        return cls(embedder, n_actions, config, torch_encoder=torch_encoder)

    # ---- what a device calls ------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        return self._model.embedder if self._model is not None else self._embedder

    @property
    def adapting(self) -> bool:
        """True while a background job runs (or waits to be swapped in)."""
        return self._future is not None

    @property
    def torch_encoder(self) -> Any | None:
        """The torch encoder adaptation trains (the adapted one after a swap), if any."""
        return self._model.torch_encoder if self._model is not None else self._torch_encoder

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Embeddings (B, D) of windows (B, *input_shape) or one window, current encoder."""
        return self.embedder.embed(x)

    def fit_head(self, x: np.ndarray, y: np.ndarray) -> HeadFit:
        """Personalize on a few labeled windows: head, projection, drift reference, bandit."""
        import sklearn.linear_model  # noqa: F401  (a one-time import, not part of the fit)

        t0 = time.perf_counter()
        z = self.embed(x)
        labels = _labels(y, len(z), self.n_actions)
        th = time.perf_counter()
        head = PersonalHead().fit(z, labels)
        head_seconds = time.perf_counter() - th
        model = build_model(
            self.config, self.n_actions, self.embedder, self._torch_encoder, z, labels, None,
            [], head,
        )  # fmt: skip
        calib_x = np.array(x, dtype=np.float32, copy=True)
        self._calib = (calib_x.reshape(len(z), *calib_x.shape[-len(self.input_shape) :]), labels)
        self._model = model
        self.head_fit = HeadFit(
            labels=len(labels),
            classes=sorted(set(labels.tolist())),
            head_seconds=head_seconds,
            seconds=time.perf_counter() - t0,
            proj_dim=model.projection.dim,
            drift_reference=0 if model.drift is None else len(z),
        )
        return self.head_fit

    def decide(self, window: np.ndarray) -> int:
        """The action for one window (embed, project, bandit choice)."""
        m = self._require_model()
        t0 = time.perf_counter_ns()
        z = m.embedder.embed(window)
        self.last_embed_ns = time.perf_counter_ns() - t0
        if z.shape[0] != 1:
            raise DeviceError(f"decide takes one window, got a batch of {z.shape[0]}")
        c = m.projection.transform(z[0])
        action = m.policy.choose(c)
        self._last = (window, m, z[0], c)
        return action

    def update(self, window: np.ndarray, action: int, reward: float) -> bool:
        """Learn from the reward of ``action`` on ``window``; True if drift fired."""
        m = self._require_model()
        z, c = self._features(window, m)
        m.policy.update(c, action, reward)
        step = self.steps
        self.buffer.add(step, window, action, reward)
        self.steps += 1
        fired = m.drift.update(z) if m.drift is not None else False
        if fired:
            self.alarms.append(step)
            idle = self._pending is None and self._future is None
            if idle and self.config.on_drift != "none":
                self._pending = _Pending(step, step + 1 + self.config.adapt_after)
        return fired

    def predict(self, window: np.ndarray) -> int:
        """The head's label for one window (reuses the last decision's embedding)."""
        m = self._require_model()
        z, _ = self._features(window, m)
        return int(m.head.predict(z)[0])

    def maintain(self) -> AdaptationEvent | None:
        """Between windows: swap in a finished job, or start a due one. Returns the
        event that was swapped in (or failed) at this call, else None."""
        if self._future is not None:
            return self._swap() if self._future.done() else None
        if self._pending is not None and self.steps >= self._pending.launch_step:
            self._launch(self._pending.alarm_step)
        return None

    def finish(self) -> None:
        """At the end of the stream: wait for a running job and record its outcome."""
        self._pending = None
        if self._future is None or self._event is None:
            return
        event = self._event
        try:
            self._record(event, self._future.result())
            event.status = "finished after the stream ended"
        except Exception as exc:  # the job's own error, reported, never raised
            event.status = f"failed: {type(exc).__name__}: {exc}"
        self._future = self._event = None

    def close(self) -> None:
        self.finish()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def snapshot(self) -> dict[str, Any]:
        """What the loop has learned, to persist (everything but the embedder itself):
        the head, projection, bandit, drift reference, torch encoder (adapted or not),
        the labeled windows and the step count. Copies: the loop goes on meanwhile."""
        snap = {"parts": self._require_model().parts(), "calib": self._calib}
        return copy.deepcopy({**snap, "steps": self.steps, "head_fit": self.head_fit})

    def restore(self, snap: dict[str, Any]) -> None:
        """Resume from ``snapshot()``, on this runtime's embedder (the same encoder's)."""
        self._model = Model.on(self._embedder, snap["parts"])
        self._calib, self.steps, self.head_fit = snap["calib"], snap["steps"], snap["head_fit"]

    def __enter__(self) -> DeviceRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals ----------------------------------------------------------------

    def _require_model(self) -> Model:
        if self._model is None:
            raise DeviceError("call fit_head(x, y) with the device's labeled windows first")
        return self._model

    def _features(self, window: np.ndarray, m: Model) -> tuple[np.ndarray, np.ndarray]:
        last = self._last
        if last is not None and last[0] is window and last[1] is m:
            return last[2], last[3]
        z = m.embedder.embed(window)
        if z.shape[0] != 1:
            raise DeviceError(f"expected one window, got a batch of {z.shape[0]}")
        return z[0], m.projection.transform(z[0])

    def _launch(self, alarm_step: int) -> None:
        m = self._require_model()
        snapshot = self.buffer.snapshot()
        mode, note, encoder = "refit", "", None
        if self.config.on_drift == "adapt":
            if m.torch_encoder is not None:
                mode, encoder = "adapt", copy.deepcopy(m.torch_encoder)
            else:
                note = f"no torch encoder behind the {m.embedder.kind} runtime: refit only"
        event = AdaptationEvent(alarm_step, self.steps, mode, len(snapshot), note=note)
        self.events.append(event)
        self._event, self._pending = event, None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fedssl-adapt")
        if self._workdir is None:  # re-exported ONNX models; removed by close() or at exit
            self._workdir = Path(tempfile.mkdtemp(prefix="fedssl-device-"))
            weakref.finalize(self, shutil.rmtree, self._workdir, ignore_errors=True)
        self._launched_at = time.perf_counter()
        assert self._calib is not None
        onnx = m.embedder.path if isinstance(m.embedder, OnnxEmbedder) else ""
        job = AdaptJob(self.config, self.n_actions, encoder, str(onnx), self._calib, snapshot,
                       str(self._workdir))  # fmt: skip
        if self._worker is not None and onnx:
            remote = self._worker.submit(run_adapt_job, job)
            self._future = self._executor.submit(self._from_worker, remote, m.torch_encoder)
        else:
            self._future = self._executor.submit(prepare_model, job, m.embedder, m.torch_encoder)
        log.info(
            "drift at step %d: %s on %d buffered windows started at step %d%s",
            alarm_step,
            mode,
            len(snapshot),
            self.steps,
            f" ({note})" if note else "",
        )

    def _from_worker(self, remote: Future[dict[str, Any]], torch_encoder: Any | None) -> Prepared:
        """In the helper thread: the worker's result, with its ONNX session opened here."""
        done = remote.result()
        parts = done["parts"]  # refit only: the worker had no torch encoder to send back
        model = Model.on(OnnxEmbedder(done["onnx"]), (parts[0] or torch_encoder, *parts[1:]))
        return Prepared(model, done["last_step"], done["outcome"], done["seconds"])

    def _record(self, event: AdaptationEvent, prep: Prepared) -> None:
        event.job_seconds = prep.seconds
        if prep.outcome is not None:
            event.train_steps = prep.outcome.steps
            event.loss_before = prep.outcome.loss_before
            event.loss_after = prep.outcome.loss_after
            event.train_seconds = prep.outcome.seconds

    def _swap(self) -> AdaptationEvent:
        assert self._future is not None and self._event is not None
        event, future = self._event, self._future
        self._future = self._event = None
        t0 = time.perf_counter()
        try:
            prep = future.result()
        except Exception as exc:  # keep deciding with the old model; say why
            event.status = f"failed: {type(exc).__name__}: {exc}"
            log.warning("adaptation started at step %d failed: %s", event.start_step, exc)
            return event
        catch_up = self.buffer.since(prep.last_step)
        if catch_up:
            model = prep.model
            z = model.embedder.embed(stack_windows(catch_up))
            for c, item in zip(model.projection.transform(z), catch_up, strict=True):
                model.policy.update(c, item.action, item.reward)
        self._model = prep.model
        self._last = None
        self._record(event, prep)
        event.status = "swapped"
        event.swap_step = self.steps
        event.decisions_during = self.steps - event.start_step
        event.catch_up = len(catch_up)
        event.swap_ms = (time.perf_counter() - t0) * 1e3
        event.wall_seconds = time.perf_counter() - self._launched_at
        return event
