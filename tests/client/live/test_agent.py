"""The live agent on a digits stream: stores every window, decides once it has an
encoder and labels, learns from rewards, swaps in each newly delivered encoder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from delivered_encoder import DIGITS_SHAPE, deliver
from sklearn.datasets import load_digits

from client.live.agent import DECISIONS_FILE, AgentSettings, LiveAgent
from client.live.frames import Frame
from client.live.window_store import read_store

SHAPE = DIGITS_SHAPE


def _stream() -> tuple[np.ndarray, np.ndarray]:
    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


def _wait_for(agent: LiveAgent, frames: list[Frame], swaps: int) -> list:  # type: ignore[type-arg]
    """Feed frames (cycling) until the agent has made ``swaps`` swaps."""
    out, i = [], 0
    deadline = time.monotonic() + 120
    while agent.counts.swaps < swaps and time.monotonic() < deadline:
        out.append(agent.step(frames[i % len(frames)]))
        i += 1
        time.sleep(0.001)
    assert agent.counts.swaps >= swaps, agent.counts
    return out


def _deciding(settings: AgentSettings, tmp: Path, x: np.ndarray, y: np.ndarray) -> LiveAgent:
    """An agent on a delivered round-0 encoder, fed labeled windows until it decides."""
    agent = LiveAgent(settings, SHAPE)
    deliver(settings.state_dir, tmp, 0)
    _wait_for(agent, [Frame(x[i], int(y[i])) for i in range(60)], 1)
    return agent


def test_the_agent_decides_learns_logs_and_swaps_encoders(tmp_path: Path) -> None:
    x, y = _stream()
    state = tmp_path / "state"
    frames = [Frame(x[i], int(y[i])) for i in range(400)]
    settings = AgentSettings(
        state_dir=state, n_actions=10, labels_per_class=5, store_max_windows=10**7
    )
    agent = LiveAgent(settings, SHAPE)  # (a store that keeps all: compared with the count below)
    # No encoder yet: windows are kept, nothing is decided.
    assert all(agent.step(f) is None for f in frames[:120])
    assert agent.counts.waiting == 120 and len(agent.store) == 120
    deliver(state, tmp_path, 0)
    decisions = [d for d in _wait_for(agent, frames[120:], 1) if d is not None]
    rest = [agent.step(f) for f in frames[200:400]]
    assert all(d is not None for d in rest)
    # each decision names its window's index in the stream: the windows the store took
    seen = agent.store.seen()
    assert [d.window for d in rest if d is not None] == list(range(seen - 200, seen))
    assert agent.live is not None and agent.live.round == 0
    # a label makes the reward: 1 exactly when the action is the label
    assert all(d.reward == float(d.action == d.label) for d in rest)
    # the bandit on a random-init encoder still beats chance (10 classes) on digits
    assert np.mean([d.reward for d in rest]) > 0.3
    # A newer delivery is swapped in between two windows; decisions never stop.
    deliver(state, tmp_path, 1)
    during = _wait_for(agent, frames, 2)
    assert all(d is not None for d in during) and agent.live.round == 1
    agent.close()
    logged = [json.loads(line) for line in (state / DECISIONS_FILE).read_text().splitlines()]
    assert len(logged) == agent.counts.decisions == len(decisions) + 200 + len(during)
    assert {row["encoder_round"] for row in logged} == {0, 1}
    # each swap is logged with the window it took over at and what it was fitted on
    swaps = [json.loads(x) for x in (state / "agent" / "swaps.jsonl").read_text().splitlines()]
    assert [s["round"] for s in swaps] == [0, 1]
    for swap in swaps:
        first = next(r for r in logged if r["encoder_round"] == swap["round"])
        assert first["window"] == swap["first_window"]
        assert 120 <= swap["calibrated_on"] <= swap["first_window"]
    stored_x, stored_y = read_store(state / "store")
    assert len(stored_x) == agent.counts.windows and (stored_y >= 0).all()


def test_a_stream_reward_wins_over_the_label_and_unlabeled_windows_teach_nothing(
    tmp_path: Path,
) -> None:
    x, y = _stream()
    state = tmp_path / "state"
    agent = LiveAgent(AgentSettings(state_dir=state, n_actions=10, labels_per_class=3), SHAPE)
    deliver(state, tmp_path, 0)
    _wait_for(agent, [Frame(x[i], int(y[i])) for i in range(60)], 1)
    unlabeled = agent.step(Frame(x[100]))
    rewarded = agent.step(Frame(x[101], int(y[101]), reward=0.25))
    assert unlabeled is not None and unlabeled.reward is None and unlabeled.label is None
    assert rewarded is not None and rewarded.reward == 0.25
    agent.close()


def test_without_two_labeled_classes_the_agent_keeps_waiting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x, _ = _stream()
    state = tmp_path / "state"
    agent = LiveAgent(AgentSettings(state_dir=state, n_actions=10), SHAPE)
    deliver(state, tmp_path, 0)
    for i in range(300):
        assert agent.step(Frame(x[i], 3 if i < 5 else None)) is None
        time.sleep(0.002)
    agent.close()
    assert agent.counts.failed_swaps >= 1 and agent.counts.swaps == 0
    warnings = [r.getMessage() for r in caplog.records if "cannot be used yet" in r.getMessage()]
    assert len(warnings) == 1 and "1 class(es)" in warnings[0]


def test_a_new_agent_on_the_same_state_resumes_what_the_last_one_learned(tmp_path: Path) -> None:
    x, y = _stream()
    state = tmp_path / "state"
    settings = AgentSettings(state_dir=state, n_actions=10, labels_per_class=3)
    first = _deciding(settings, tmp_path, x, y)
    for i in range(60, 300):
        first.step(Frame(x[i], int(y[i])))
    first.close()
    learned = first.live.runtime.snapshot()  # type: ignore[union-attr]
    second = LiveAgent(settings, SHAPE)
    assert second.live is not None and second.live.round == 0  # deciding at once
    resumed = second.live.runtime.snapshot()
    assert resumed["steps"] == learned["steps"] > 200
    for a, b in zip(
        learned["parts"][1:4], resumed["parts"][1:4], strict=True
    ):  # projection, bandit, head
        assert a.__class__ is b.__class__
        for key, value in vars(a).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, vars(b)[key])
    window = x[400]
    assert second.step(Frame(window)) is not None
    second.close()


def test_a_damaged_state_file_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    x, y = _stream()
    state = tmp_path / "state"
    settings = AgentSettings(state_dir=state, n_actions=10, labels_per_class=3)
    agent = _deciding(settings, tmp_path, x, y)
    agent.close()
    saved = state / "agent" / "state.pkl"
    data = bytearray(saved.read_bytes())
    data[-10] ^= 0xFF
    saved.write_bytes(bytes(data))
    again = LiveAgent(settings, SHAPE)
    assert again.live is None and any("damaged" in r.getMessage() for r in caplog.records)
    again.close()
