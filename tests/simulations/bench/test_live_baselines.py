"""The live benchmark's baselines: the agent's swap protocol replayed offline, and rates
scored on exactly the windows the live devices decided."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

from client.export import export_encoder
from simulations.bench.live_baselines import ARMS, rates_by_round, replay_rewards


def test_rates_by_round_score_only_the_windows_decided_in_each_round() -> None:
    rewards = {
        "a": {arm: np.array([np.nan, 1.0, 0.0, 1.0, 1.0]) for arm in ARMS},
        "b": {arm: np.array([0.0, 0.0, 1.0]) for arm in ARMS},
    }
    decisions = [
        {"device": "a", "window": 1, "encoder_round": 0, "reward": 1.0},
        {"device": "a", "window": 2, "encoder_round": 0, "reward": 0.0},
        {"device": "b", "window": 2, "encoder_round": 0, "reward": 1.0},
        {"device": "a", "window": 4, "encoder_round": 1, "reward": 1.0},
        {"device": "b", "window": 0, "encoder_round": 1, "reward": None},  # unlabeled: skipped
        {"device": "a", "window": 0, "encoder_round": 2, "reward": 0.0},  # no baseline there
    ]
    rates = rates_by_round(decisions, rewards)
    # round 0: a@1 = 1, a@2 = 0, b@2 = 1; round 1: a@4 = 1; round 2: nothing comparable
    assert rates == {arm: [2 / 3, 1.0, None] for arm in ARMS}


def test_a_replay_follows_the_devices_swaps(tmp_path: Path) -> None:
    from delivered_encoder import deliver

    d = load_digits()
    x, y = (d.images / 16.0).astype(np.float32)[:300, None], d.target[:300]
    stream, state = tmp_path / "s.npz", tmp_path / "state"
    np.savez(stream, x=x, y=y)
    deliver(state, tmp_path, 0)
    agent = state / "agent"
    agent.mkdir()
    pt = agent / "encoder-0.pt"
    pt.write_bytes((state / "global" / "encoder.pt").read_bytes())
    export_encoder(pt, "onnx", agent / "encoder-0.onnx", input_shape=(1, 8, 8))
    swaps = [{"round": 0, "first_window": 100, "calibrated_on": 90},
             {"round": 1, "first_window": 200, "calibrated_on": 190}]  # fmt: skip
    (agent / "swaps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in swaps))
    rewards = replay_rewards(stream, state, n_actions=10, labels_per_class=3)
    for arm in ARMS:
        r = rewards[arm]
        assert len(r) == 300 and np.isnan(r[:100]).all()  # before the first swap: nothing
        assert set(np.unique(r[100:])) <= {0.0, 1.0}
        assert r[100:].mean() > 0.2  # both beat chance (10 classes) on digits
