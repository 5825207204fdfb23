"""``run_stream``: replay one device's labeled stream through a ``DeviceRuntime``, in time order.

Labeled windows become a bandit problem by the supervised-to-bandit conversion: the
actions are the classes, and playing the true label pays 1, anything else 0. So the
oracle earns 1 per window and regret is the number of wrong decisions.

Per step, timed with ``time.perf_counter_ns`` as one decision: ``decide`` (embed,
project, choose) plus ``update`` (bandit update, replay buffer, drift check). Outside
the timed part: ``maintain()`` before the window (starting or swapping an adaptation
happens between windows; a swap's cost is reported in its event), and the head's
prediction, recorded only to score the head on the same windows.

Pacing. Replayed windows arrive as fast as the loop takes them, which gives exactly
the decisions of a device that waits between windows, except while an adaptation runs
in the background: how many decisions it overlaps depends on how often windows
arrive. So while a job runs, ``pace_s`` spaces the windows (HAPT's real spacing is
1.28 s); the rest of the stream runs at full speed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from client.runtime.device_loop import AdaptationEvent, DeviceError, DeviceRuntime, HeadFit
from client.runtime.encoders import sample_shape_matches

log = logging.getLogger("fedssl")


@dataclass(frozen=True)
class StepRecord:
    """One decision of the stream (one line of ``steps.jsonl``)."""

    step: int
    action: int
    label: int
    reward: float
    cumulative_reward: float
    latency_us: float  # decide + update
    embed_us: float  # of which the encoder's forward pass
    drift: bool  # the detector fired on this window
    adapting: bool  # a background adaptation was running
    head: int  # the personal head's label for this window

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StreamResult:
    """Every step, the adaptation events and what the summary needs to know."""

    name: str
    runtime: str  # the embedder's kind at the start (onnx, eager, raw-stats, ...)
    policy: str
    n_actions: int
    steps: list[StepRecord]
    events: list[AdaptationEvent]
    alarms: list[int]
    wall_seconds: float
    pace_s: float
    head_fit: HeadFit | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        n = len(self.steps)
        reward = float(sum(s.reward for s in self.steps))
        lat = np.array([s.latency_us for s in self.steps]) / 1e3
        busy = np.array([s.adapting for s in self.steps], dtype=bool)
        return {
            "name": self.name,
            "runtime": self.runtime,
            "policy": self.policy,
            "actions": self.n_actions,
            "decisions": n,
            "cumulative_reward": reward,
            "reward_rate": reward / n if n else None,
            "regret": n - reward,  # against the oracle, which earns 1 every step
            "head_accuracy": (
                float(np.mean([s.head == s.label for s in self.steps])) if n else None
            ),
            "head_fit_seconds": self.head_fit.head_seconds if self.head_fit else None,
            "calibration_seconds": self.head_fit.seconds if self.head_fit else None,
            "labeled_windows": self.head_fit.labels if self.head_fit else 0,
            "proj_dim": self.head_fit.proj_dim if self.head_fit else None,
            "drift_alarms": list(self.alarms),
            "adaptations": [e.to_dict() for e in self.events],
            "latency_ms": latency_stats(lat),
            "latency_ms_while_adapting": latency_stats(lat[busy]),
            "latency_ms_otherwise": latency_stats(lat[~busy]),
            "embed_ms": latency_stats(np.array([s.embed_us for s in self.steps]) / 1e3),
            "wall_seconds": self.wall_seconds,
            "pace_s": self.pace_s,
            **self.extra,
        }


def latency_stats(ms: np.ndarray) -> dict[str, float | int | None]:
    """p50 / p99 / max in ms and the count (None for no steps)."""
    if len(ms) == 0:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "n": len(ms),
    }


def _check_stream(rt: DeviceRuntime, windows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    shape = rt.input_shape
    if not isinstance(windows, np.ndarray) or windows.ndim != len(shape) + 1:
        raise DeviceError(
            f"expected a stream of windows (N, {', '.join(map(str, shape))}), "
            f"got shape {np.shape(windows)}"
        )
    if not sample_shape_matches(windows.shape[1:], shape):
        raise DeviceError(
            f"stream windows have shape {windows.shape[1:]}, the encoder takes {shape}"
        )
    y = np.asarray(labels)
    if y.shape != (len(windows),) or y.dtype.kind not in "iu":
        raise DeviceError(f"expected {len(windows)} integer labels, got {y.shape} {y.dtype}")
    if len(y) == 0:
        raise DeviceError("empty stream: no windows to decide on")
    if y.min() < 0 or y.max() >= rt.n_actions:
        raise DeviceError(f"stream labels must be actions in [0, {rt.n_actions})")
    return y.astype(np.int64)


def run_stream(
    rt: DeviceRuntime,
    windows: np.ndarray,
    labels: np.ndarray,
    *,
    pace_s: float = 0.0,
    log_every: int = 100,
    name: str = "device",
) -> StreamResult:
    """Decide on every window in order (``fit_head`` must have run); see the module doc."""
    y = _check_stream(rt, windows, labels)
    if pace_s < 0:
        raise DeviceError(f"pace must be >= 0 seconds, got {pace_s}")
    records: list[StepRecord] = []
    total = 0.0
    t_start = time.perf_counter()
    for i in range(len(windows)):
        event = rt.maintain()
        if event is not None:
            _log_event(name, event)
        record = _step(rt, i, windows[i], int(y[i]), total)
        total = record.cumulative_reward
        records.append(record)
        if log_every and ((i + 1) % log_every == 0 or i + 1 == len(windows)):
            _log_progress(name, rt, records, len(windows))
        if record.adapting and pace_s:
            time.sleep(max(0.0, pace_s - record.latency_us / 1e6))
    rt.finish()
    return StreamResult(
        name=name,
        runtime=rt.embedder.kind,
        policy=rt.config.policy,
        n_actions=rt.n_actions,
        steps=records,
        events=list(rt.events),
        alarms=list(rt.alarms),
        wall_seconds=time.perf_counter() - t_start,
        pace_s=pace_s,
        head_fit=rt.head_fit,
    )


def _step(rt: DeviceRuntime, i: int, w: np.ndarray, label: int, total: float) -> StepRecord:
    """One decision, timed from the window's arrival to the bandit's update."""
    t0 = time.perf_counter_ns()
    action = rt.decide(w)
    reward = float(action == label)
    fired = rt.update(w, action, reward)
    elapsed = time.perf_counter_ns() - t0
    return StepRecord(
        step=i,
        action=action,
        label=label,
        reward=reward,
        cumulative_reward=total + reward,
        latency_us=elapsed / 1e3,
        embed_us=rt.last_embed_ns / 1e3,
        drift=fired,
        adapting=rt.adapting,
        head=rt.predict(w),
    )


def _log_progress(name: str, rt: DeviceRuntime, records: list[StepRecord], n: int) -> None:
    done, total = len(records), records[-1].cumulative_reward
    p99 = float(np.percentile([r.latency_us for r in records], 99)) / 1e3
    log.info(
        "%s step %d/%d: reward %.0f (%.1f%%), p99 %.3f ms, drift alarms %d, adaptations %d",
        name,
        done,
        n,
        total,
        100 * total / done,
        p99,
        len(rt.alarms),
        sum(e.status == "swapped" for e in rt.events),
    )


def _log_event(name: str, e: AdaptationEvent) -> None:
    if e.status != "swapped":
        log.warning("%s adaptation from step %d: %s", name, e.start_step, e.status)
        return
    losses = ""
    if e.loss_before is not None and e.loss_after is not None:
        losses = f", pretext loss {e.loss_before:.3f} -> {e.loss_after:.3f}"
    log.info(
        "%s %s swapped in at step %d (alarm %d, %d decisions meanwhile, %.1f s%s)",
        name,
        e.mode,
        e.swap_step,
        e.alarm_step,
        e.decisions_during,
        e.wall_seconds or 0.0,
        losses,
    )
