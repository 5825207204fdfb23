"""The live benchmark's figures from the files the devices write (synthetic, known values)."""

from __future__ import annotations

import json
from pathlib import Path

from simulations.bench.live import summarize


def _device(
    root: Path, name: str, decisions: list[dict], spans: list[tuple[float, float]], counts: dict
) -> None:  # type: ignore[type-arg]
    state = root / name
    (state / "agent").mkdir(parents=True)
    (state / "decisions.jsonl").write_text("".join(json.dumps(d) + "\n" for d in decisions))
    rows = [{"stage": "collect_masked_vectors", "time": b, "handler_s": b - a - 0.5, "startup_s": 0.5}
            for a, b in spans]  # fmt: skip
    rows.append(
        {"stage": "evaluate", "time": 1e9, "handler_s": 1e9, "startup_s": 0.0}
    )  # not training
    (state / "timing.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (state / "agent" / "counts.json").write_text(json.dumps(counts))


def _d(t: float, rnd: int, reward: float | None, ms: float) -> dict:  # type: ignore[type-arg]
    return {"time": t, "encoder_round": rnd, "reward": reward, "latency_ms": ms}


def test_summary_splits_idle_and_training_and_groups_rewards_by_round(tmp_path: Path) -> None:
    counts = {"missed": 0, "swaps": 2, "store_windows": 10, "store_bytes": 100, "swap_ms": [0.01],
              "bad_frames": 1}  # fmt: skip
    # device a trains during [10, 20]; device b never does
    _device(
        tmp_path,
        "a",
        [_d(5, 0, 1.0, 1.0), _d(15, 0, 0.0, 9.0), _d(25, 1, 1.0, 2.0)],
        [(10, 20)],
        counts,
    )
    _device(tmp_path, "b", [_d(5, 0, None, 1.0), _d(30, 1, 0.0, 3.0)], [], {**counts, "missed": 1})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.jsonl").write_text('{"completed": true}\n{"completed": false}\n')
    r = summarize(tmp_path, ["a", "b"])
    assert r["devices"] == 2 and r["rounds_completed"] == 1 and r["decisions"] == 5
    assert r["missed_decisions"] == 1 and r["swaps"] == 4 and r["bad_frames"] == 2
    assert r["decision_p99_ms"]["training"] == 9.0  # the one decision inside a's training
    assert r["decision_max_ms"]["idle"] == 3.0
    # round 0: rewards 1, 0 (b's unlabeled decision has none); round 1: 1, 0
    assert r["reward_rate_by_round"] == [0.5, 0.5]
    assert r["reward_rate_initial"] == 0.5 and r["reward_rate_final"] == 0.5
    assert r["store_windows"] == 20 and r["store_bytes"] == 200
