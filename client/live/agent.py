"""``LiveAgent``: one device's decisions on a live stream, driven by the global encoder.

For every good window of the stream (``client.live.frames``) the agent:

1. keeps it, and its label when the stream gives one, in the device's private window
   store (``client.live.window_store``): the federated rounds train on it;
2. decides (``client.runtime.DeviceRuntime``: embed, project, bandit), timed from the
   window's arrival to the decision;
3. learns from the reward: the stream's own, else 1 when the action is the window's
   label and 0 otherwise; a window without either teaches nothing;
4. logs the decision as a JSON line (``STATE_DIR/decisions.jsonl``).

The runtime is personalized by the first ``labels_per_class`` labeled windows of each
class the device has seen (two classes at least): until then the agent stores windows
and decides nothing (counted as ``waiting``). Between two windows it looks for a newer
global encoder (``STATE_DIR/global/encoder.json``, written when the server delivers
one); a new runtime is built and personalized in a background thread while decisions
go on with the old one, and swapped in between two windows (``swaps``).

Embedding it in an app::

    agent = LiveAgent(AgentSettings(state_dir=Path("state"), n_actions=6), shape=(6, 128))
    for frame in FrameReader(sys.stdin.buffer, agent.shape):
        decision = agent.step(frame)       # None while waiting for an encoder or labels
    agent.close()
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from client.delivery import GLOBAL_DIR, META_FILE
from client.live.agent_state import load_state, save_state
from client.live.frames import Frame
from client.live.preparation import AGENT_FOLDER, Job, Preparer, require_two_classes
from client.live.window_store import STORE_FOLDER, WindowStore
from client.runtime.settings import RuntimeConfig

DECISIONS_FILE = "decisions.jsonl"
SWAPS_FILE = "swaps.jsonl"  # in the agent folder
RETRY_AFTER_WINDOWS = 50
LATENCY_WINDOW = 10_000  # decisions whose latency the agent keeps for its summaries
log = logging.getLogger("fedssl.client")


@dataclass(frozen=True)
class AgentSettings:
    state_dir: Path
    n_actions: int
    labels_per_class: int = 10
    store_max_windows: int = 10_000
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    echo: bool = False  # each decision to stdout too
    save_every_s: float = 30.0  # the learned state to disk (also at each swap and stop)


@dataclass(frozen=True)
class Decision:
    step: int
    window: int  # the window's index in the stream: windows the store has ever taken
    action: int
    label: int | None
    reward: float | None
    latency_ms: float
    encoder_round: int
    time: float  # wall clock (s since the epoch) at the window's arrival


@dataclass
class AgentCounts:
    windows: int = 0
    decisions: int = 0
    waiting: int = 0  # windows seen before the agent could decide
    swaps: int = 0
    failed_swaps: int = 0
    rewarded: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    swap_ms: list[float] = field(default_factory=list)  # on the deciding thread


@dataclass
class _Live:
    runtime: Any  # client.runtime.DeviceRuntime
    round: int
    parity: float  # max |ONNX - torch| on sample windows
    prepare_s: float
    calibrated_on: int = 0  # windows the store had taken when the preparation began


class LiveAgent:
    def __init__(self, settings: AgentSettings, shape: tuple[int, ...]) -> None:
        self.settings, self.shape = settings, tuple(shape)
        settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = WindowStore(
            settings.state_dir / STORE_FOLDER, self.shape, settings.store_max_windows
        )
        self.counts = AgentCounts()
        self.live: _Live | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-swap")
        self._preparer = Preparer()
        self._classes: set[int] = set(self.store.windows()[1].tolist()) - {-1}  # labels seen
        self._next: Future[_Live] | None = None
        self._retry_at = 0  # windows: when a failed preparation may be tried again
        self._delivered = _Delivered(settings.state_dir)
        self._last_failure = ""
        # Line-buffered: a decision logged is on its way to disk, a killed agent loses none.
        self._log: IO[str] = open(  # noqa: SIM115
            settings.state_dir / DECISIONS_FILE, "a", encoding="utf-8", buffering=1
        )
        self._saved_at = time.monotonic()
        self._resume()

    # ---- the loop -------------------------------------------------------------------

    def step(self, frame: Frame) -> Decision | None:
        """Store, decide, learn and log one window; None when the agent cannot decide yet."""
        t0, arrived = time.perf_counter_ns(), time.time()
        self.store.append(frame.window, frame.label)
        self.counts.windows += 1
        if frame.label is not None:
            self._classes.add(frame.label)
        self._maintain()
        if self.live is None:
            self.counts.waiting += 1
            return None
        rt = self.live.runtime
        event = rt.maintain()  # a finished adaptation swapped in, or a due one started
        if event is not None:
            log.info(
                "adaptation after the drift alarm at step %d: %s", event.alarm_step, event.status
            )
        action = rt.decide(frame.window)
        latency_ms = (time.perf_counter_ns() - t0) / 1e6
        reward = self._reward(frame, action)
        if reward is not None:
            rt.update(frame.window, action, reward)
            self.counts.rewarded += reward
        decision = Decision(
            step=self.counts.decisions,
            window=self.store.seen() - 1,
            action=action,
            label=frame.label,
            reward=reward,
            latency_ms=latency_ms,
            encoder_round=self.live.round,
            time=arrived,
        )
        self._record(decision)
        if time.monotonic() - self._saved_at >= self.settings.save_every_s:
            self._save()
        return decision

    def _reward(self, frame: Frame, action: int) -> float | None:
        if frame.reward is not None:
            return float(frame.reward)
        if frame.label is not None:
            return float(action == frame.label)
        return None

    def _record(self, d: Decision) -> None:
        self.counts.decisions += 1
        self.counts.latencies_ms.append(d.latency_ms)
        if len(self.counts.latencies_ms) > 2 * LATENCY_WINDOW:  # the recent ones: bounded
            del self.counts.latencies_ms[:LATENCY_WINDOW]
        line = json.dumps(asdict(d))
        self._log.write(line + "\n")
        if self.settings.echo:
            print(line, flush=True)

    # ---- the global encoder ---------------------------------------------------------

    def _maintain(self) -> None:
        """Between windows: swap in a prepared runtime, or start preparing a newer one."""
        if self._next is not None:
            if not self._next.done():
                return
            self._finish_swap(self._next)
            self._next = None
        if self.counts.windows < self._retry_at:
            return
        delivered = self._delivered.round()
        current = self.live.round if self.live is not None else -1
        if delivered > current:
            self._next = self._pool.submit(self._prepare)

    def _finish_swap(self, job: Future[_Live]) -> None:
        try:
            new = job.result()
        except Exception as exc:  # noqa: BLE001 (the old runtime goes on deciding)
            self.counts.failed_swaps += 1
            self._retry_at = self.counts.windows + RETRY_AFTER_WINDOWS
            if str(exc) != self._last_failure:
                self._last_failure = str(exc)
                log.warning("the new global encoder cannot be used yet: %s", exc)
            return
        t0 = time.perf_counter()
        old, self.live = self.live, new
        self.counts.swap_ms.append((time.perf_counter() - t0) * 1e3)
        self.counts.swaps += 1
        self._last_failure = ""
        log.info(
            "now deciding with the global encoder of round %d (ONNX, parity max |diff| %.1g; "
            "prepared in %.2f s while deciding)",
            new.round,
            new.parity,
            new.prepare_s,
        )
        if old is not None:
            self._pool.submit(old.runtime.close)  # may wait for its adaptation job
        self._log_swap(new)
        self._save()

    def _log_swap(self, new: _Live) -> None:
        """``agent/swaps.jsonl``: when each encoder took over, and what it was fitted on."""
        row = {
            "round": new.round,
            # swaps happen in step(), after the window is stored and before it is decided
            "first_window": self.store.seen() - 1,
            "calibrated_on": new.calibrated_on,
            "prepare_s": round(new.prepare_s, 3),
            "swap_ms": self.counts.swap_ms[-1],
            "parity": new.parity,
            "time": time.time(),
        }
        with open(self._agent_folder() / SWAPS_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def _prepare(self) -> _Live:
        """In the agent's helper thread: wait (without the interpreter lock) for the
        worker process to prepare the delivered encoder, then open its ONNX session."""
        st = self.settings
        require_two_classes(len(self._classes))  # known here: no need to wake the worker
        job = Job(st.state_dir, self.shape, st.n_actions, st.runtime, st.labels_per_class)
        seen = self.store.seen()
        done = self._preparer.submit(job).result()
        rt = self._runtime_from(Path(done["onnx"]), done["snapshot"])
        return _Live(rt, int(done["round"]), float(done["parity"]), float(done["seconds"]), seen)

    def _runtime_from(self, onnx: Path, snap: dict[str, Any]) -> Any:
        """A runtime on ``onnx`` that resumes what ``snap`` learned."""
        from client.runtime.device_loop import DeviceRuntime
        from client.runtime.encoders import OnnxEmbedder

        rt = DeviceRuntime(
            OnnxEmbedder(onnx), self.settings.n_actions, self.settings.runtime,
            torch_encoder=snap["parts"][0], worker=self._preparer.pool,
        )  # fmt: skip
        rt.restore(snap)
        return rt

    # ---- persistence ----------------------------------------------------------------

    def _save(self) -> None:
        """Snapshot now (copies, on this thread), write in the background."""
        if self.live is None:
            return
        self._saved_at = time.monotonic()
        rt = self.live.runtime
        state = {
            "round": self.live.round,
            "parity": self.live.parity,
            "onnx": rt.embedder.path.read_bytes(),
            "snapshot": rt.snapshot(),
            "n_actions": self.settings.n_actions,
            "shape": list(self.shape),
        }
        self._pool.submit(save_state, self._agent_folder(), state)

    def _resume(self) -> None:
        """Decide at once after a restart, with what the agent had learned."""
        from common.atomic import atomic_write_bytes

        folder = self._agent_folder()
        state = load_state(folder, self.settings.n_actions, self.shape)
        if state is None:
            return
        onnx = folder / f"resumed-{state['round']}.onnx"
        atomic_write_bytes(onnx, state["onnx"])
        rt = self._runtime_from(onnx, state["snapshot"])
        self.live = _Live(rt, int(state["round"]), float(state["parity"]), 0.0)
        log.info(
            "resumed: deciding with the global encoder of round %d, %d steps learned (%s)",
            self.live.round,
            rt.steps,
            folder / "state.pkl",
        )

    def _agent_folder(self) -> Path:
        folder = self.settings.state_dir / AGENT_FOLDER
        folder.mkdir(exist_ok=True, mode=0o700)
        return folder

    def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
        if self.live is not None:
            self.live.runtime.finish()  # a running adaptation's outcome belongs in the state
            self._save()
        self._pool.shutdown(wait=True)
        self._preparer.close()
        if self.live is not None:
            self.live.runtime.close()
        self.store.close()
        self._log.close()


class _Delivered:
    """The round of the newest delivered global encoder (-1: none yet), read again only
    when its metadata file changes: the agent asks between every two windows."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / GLOBAL_DIR / META_FILE
        self.seen: tuple[int, int] | None = None
        self.value = -1

    def round(self) -> int:
        try:
            st = os.stat(self.path)
        except OSError:
            return -1
        if (st.st_mtime_ns, st.st_ino) != self.seen:
            try:
                self.value = int(json.loads(self.path.read_text())["round"])
                self.seen = (st.st_mtime_ns, st.st_ino)
            except (OSError, ValueError, KeyError, TypeError):
                return -1
        return self.value
