"""What the federation buys a live device: the same stream under two encoders that never
change, following the live agent's own protocol, scored on the very windows it decided.

The live agent of each device decides with whichever global encoder it has swapped in.
At each swap it starts a new runtime (head, projection, warm bandit, drift reference)
fitted on the first ``labels_per_class`` labeled windows of each class its store held
when the preparation began (``agent/swaps.jsonl``: ``calibrated_on``, ``first_window``).
To say what the federated encoders are worth, each device's stream is replayed offline
through the same protocol, at the same windows, with the same runtime settings (drift
detection and adaptation included), under:

- ``random-init``: the round-0 global encoder (the federation's random init, the same
  file the device decided with first), at every swap;
- ``raw``: no encoder, per-channel statistics of the window (``client.runtime.raw``).

A live decision at stream window ``w`` with encoder round ``r`` is compared with each
baseline's reward at ``w``: the rates by round are over exactly the same windows. What
differs from the live run is only the encoder (and, after a restart, a baseline goes on
with its runtime while the agent resumed from its last save).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

ARMS = ("random-init", "raw")


def replay_rewards(
    stream: Path, state_dir: Path, n_actions: int, labels_per_class: int
) -> dict[str, np.ndarray]:
    """Per arm, the reward at every window of ``stream`` (the device's ``.npz``) from the
    device's first swap on (NaN before it: the agent decided nothing there either)."""
    from client.live.agent import SWAPS_FILE
    from client.live.preparation import AGENT_FOLDER
    from client.runtime.device_loop import DeviceRuntime
    from client.runtime.raw import RawFeatures
    from client.runtime.settings import RuntimeConfig

    with np.load(stream) as f:
        x, y = f["x"].astype(np.float32), f["y"].astype(np.int64)
    agent = state_dir / AGENT_FOLDER
    swaps = [json.loads(line) for line in (agent / SWAPS_FILE).read_text().splitlines()]
    cfg = RuntimeConfig()  # the agent's (AgentSettings.runtime's default)
    makers = {
        "random-init": lambda: DeviceRuntime.load(
            agent / "encoder-0.onnx", n_actions, cfg, torch_encoder_path=agent / "encoder-0.pt"
        ),
        "raw": lambda: DeviceRuntime(RawFeatures(tuple(x.shape[1:])), n_actions, cfg),
    }
    out = {}
    for arm in ARMS:
        rewards = np.full(len(x), np.nan)
        for k, swap in enumerate(swaps):
            end = swaps[k + 1]["first_window"] if k + 1 < len(swaps) else len(x)
            start = swap["first_window"]
            with makers[arm]() as rt:
                rewards[start:end] = _segment(rt, x, y, swap["calibrated_on"], start, end,
                                              labels_per_class)  # fmt: skip
        out[arm] = rewards
    return out


def _segment(
    rt: Any, x: np.ndarray, y: np.ndarray, seen: int, start: int, end: int, per_class: int
) -> np.ndarray:
    """Fit ``rt`` on the first windows the agent's store held, then decide ``start:end``."""
    from client.live.preparation import calibration
    from client.runtime.stream import run_stream

    rt.fit_head(*calibration(x[:seen], y[:seen], per_class))
    if end <= start:
        return np.zeros(0)
    result = run_stream(rt, x[start:end], y[start:end], log_every=0)
    return np.array([s.reward for s in result.steps], dtype=np.float64)


def rates_by_round(
    decisions: list[dict[str, Any]], rewards: dict[str, dict[str, np.ndarray]]
) -> dict[str, list[float | None]]:
    """Per arm, the mean reward by encoder round over the windows the live devices
    decided in that round; ``decisions`` carry ``device``, ``window``, ``encoder_round``."""
    rounds = sorted({d["encoder_round"] for d in decisions})
    out: dict[str, list[float | None]] = {}
    for arm in ARMS:
        rates: list[float | None] = []
        for rnd in rounds:
            got = [
                rewards[d["device"]][arm][d["window"]]
                for d in decisions
                if d["encoder_round"] == rnd and d["reward"] is not None
            ]
            got = [g for g in got if not np.isnan(g)]
            rates.append(float(np.mean(got)) if got else None)
        out[arm] = rates
    return out
