"""What ``fedssl device`` writes: per-step JSON lines, summaries, curves and comparison tables.

Per run (one stream through one encoder): ``steps.jsonl``, ``summary.json`` and
``reward.png`` (cumulative reward against the oracle's, and regret, with drift alarms
and adaptation swaps marked). Across arms (``--baselines``) and users (``--user all``):
``comparison.png`` (all arms on one plot), ``comparison.md`` (a markdown table) and,
over users, ``users.png`` (reward rate per user and arm).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from client.runtime.stream import StreamResult, latency_stats
from common.atomic import atomic_write_bytes


def write_json(path: Path, obj: Any) -> Path:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())
    return path


def write_run(result: StreamResult, out: Path) -> dict[str, Any]:
    """``steps.jsonl``, ``summary.json`` and ``reward.png`` under ``out``; the summary."""
    out.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(s.to_dict()) + "\n" for s in result.steps)
    atomic_write_bytes(out / "steps.jsonl", lines.encode())
    summary = result.summary()
    write_json(out / "summary.json", summary)
    plot_run(result, out / "reward.png")
    return summary


def _curves(result: StreamResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(1, len(result.steps) + 1)
    cum = np.array([s.cumulative_reward for s in result.steps])
    return t, cum, t - cum


def plot_run(result: StreamResult, path: Path) -> Path:
    """Cumulative reward (with the oracle's) and regret per step, events marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, cum, regret = _curves(result)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.plot(t, t, color="grey", linestyle=":", label="oracle")
    ax1.plot(t, cum, label=result.name)
    ax2.plot(t, regret, color="C3")
    for ax in (ax1, ax2):
        for i, step in enumerate(result.alarms):
            ax.axvline(step, color="red", alpha=0.25, lw=0.8, label="drift" if i == 0 else None)
        swaps = [e.swap_step for e in result.events if e.swap_step is not None]
        for i, step in enumerate(swaps):
            ax.axvline(step, color="green", alpha=0.6, lw=1.2, label="swap" if i == 0 else None)
        shift = result.extra.get("shift_step")
        if shift is not None:
            ax.axvline(shift, color="black", lw=1.2, linestyle="--", label="rotation")
        ax.set_xlabel("step (window)")
    ax1.set_ylabel("cumulative reward")
    ax2.set_ylabel("regret vs oracle")
    ax1.legend(fontsize=8)
    fig.suptitle(f"{result.name}: {result.policy} on {result.runtime}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_comparison(results: Mapping[str, Sequence[StreamResult]], path: Path, title: str) -> Path:
    """Cumulative reward and regret of every arm on one figure; several streams of an
    arm are laid end to end (user after user)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    longest = 0
    for arm, runs in results.items():
        rewards = np.concatenate([[s.reward for s in r.steps] for r in runs])
        t = np.arange(1, len(rewards) + 1)
        cum = np.cumsum(rewards)
        ax1.plot(t, cum, label=arm)
        ax2.plot(t, t - cum, label=arm)
        longest = max(longest, len(t))
    t = np.arange(1, longest + 1)
    ax1.plot(t, t, color="grey", linestyle=":", label="oracle")
    first = next(iter(results.values()))
    if len(first) > 1:  # mark where each user's stream starts
        for edge in np.cumsum([len(r.steps) for r in first])[:-1]:
            for ax in (ax1, ax2):
                ax.axvline(edge, color="grey", alpha=0.3, lw=0.8)
    for ax in (ax1, ax2):
        ax.set_xlabel("step" + (" (users one after another)" if len(first) > 1 else ""))
        ax.legend(fontsize=8)
    ax1.set_ylabel("cumulative reward")
    ax2.set_ylabel("regret vs oracle")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_users(rates: Mapping[str, Mapping[str, float]], path: Path, title: str) -> Path:
    """Reward rate per user (groups) and arm (bars): ``rates[arm][user]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(rates)
    users = list(next(iter(rates.values())))
    width = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(users) + 2), 3.6))
    for i, arm in enumerate(arms):
        xs = np.arange(len(users)) + i * width
        ax.bar(xs, [rates[arm][u] for u in users], width, label=arm)
    ax.set_xticks(np.arange(len(users)) + width * (len(arms) - 1) / 2, users, fontsize=8)
    ax.set_ylabel("reward rate (accuracy of decisions)")
    lows = [v for r in rates.values() for v in r.values()]
    ax.set_ylim(max(0.0, min(lows) - 0.1), 1.0)
    ax.legend(fontsize=8, loc="lower left", ncol=len(arms))
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def aggregate(runs: Sequence[StreamResult]) -> dict[str, Any]:
    """One arm over several streams: totals, rates and latency pooled over every step."""
    steps = [s for r in runs for s in r.steps]
    n = len(steps)
    reward = float(sum(s.reward for s in steps))
    lat = np.array([s.latency_us for s in steps]) / 1e3
    busy = np.array([s.adapting for s in steps], dtype=bool)
    fits = [r.head_fit.head_seconds for r in runs if r.head_fit is not None]
    events = [e for r in runs for e in r.events]
    out: dict[str, Any] = {
        "streams": len(runs),
        "decisions": n,
        "cumulative_reward": reward,
        "reward_rate": reward / n if n else None,
        "regret": n - reward,
        "head_accuracy": float(np.mean([s.head == s.label for s in steps])) if n else None,
        "head_fit_seconds_max": max(fits) if fits else None,
        "head_fit_seconds_mean": float(np.mean(fits)) if fits else None,
        "drift_alarms": sum(len(r.alarms) for r in runs),
        "adaptations_swapped": sum(e.status == "swapped" for e in events),
        "adaptations": len(events),
        "latency_ms": latency_stats(lat),
        "latency_ms_while_adapting": latency_stats(lat[busy]),
        "latency_ms_otherwise": latency_stats(lat[~busy]),
    }
    shifted = [r for r in runs if r.extra.get("shift_step") is not None]
    if shifted:
        out["shift"] = _shift(shifted)
    return out


def _shift(runs: Sequence[StreamResult]) -> dict[str, Any]:
    """The drift drill pooled over streams: reward before and after the rotation, and
    after each stream's first swap following it; how many streams drift caught, how soon."""

    def rate(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    before, after, swapped = [], [], []
    for r in runs:
        shift = int(r.extra["shift_step"])
        rewards = [s.reward for s in r.steps]
        before += rewards[:shift]
        after += rewards[shift:]
        swaps = [e.swap_step for e in r.events if e.swap_step is not None and e.swap_step >= shift]
        swapped += rewards[swaps[0] :] if swaps else []
    delays = [r.extra.get("drift_delay") for r in runs]
    return {
        "reward_rate_before": rate(before),
        "reward_rate_after": rate(after),
        "reward_rate_after_first_swap": rate(swapped),
        "streams_detected": sum(d is not None for d in delays),
        "drift_delay": delays,
    }


def write_streams(
    by_arm: Mapping[str, Sequence[StreamResult]], out: Path, title: str
) -> dict[str, Any]:
    """Several streams through every arm: ``summary.json`` (totals per arm, reward rate
    per stream), ``comparison.md``, ``comparison.png``, ``users.png``; the summary."""
    totals = {a: aggregate(runs) for a, runs in by_arm.items()}
    rates = {
        a: {r.name.split("/")[0]: r.summary()["reward_rate"] for r in runs}
        for a, runs in by_arm.items()
    }
    plot_comparison(by_arm, out / "comparison.png", title)
    plot_users(rates, out / "users.png", title)
    streams = list(next(iter(rates.values())))
    rows = [f"| {u} | " + " | ".join(f"{rates[a][u]:.1%}" for a in rates) + " |" for u in streams]
    table = (
        f"# {title}\n\n{comparison_table(totals)}\n"
        f"Reward rate per stream:\n\n| stream | {' | '.join(rates)} |\n"
        f"|---|{'---:|' * len(rates)}\n" + "\n".join(rows) + "\n"
    )
    drills = {a: t["shift"] for a, t in totals.items() if "shift" in t}
    if drills:
        lines = [
            f"- {a}: reward rate {_fmt(d['reward_rate_before'], '.1%')} before the rotation, "
            f"{_fmt(d['reward_rate_after'], '.1%')} after it, "
            f"{_fmt(d['reward_rate_after_first_swap'], '.1%')} after the first swap following "
            f"it; drift caught it in {d['streams_detected']}/{len(streams)} streams, "
            f"{d['drift_delay']} windows after it"
            for a, d in drills.items()
        ]
        table += "\nRotation drill (pooled over streams):\n\n" + "\n".join(lines) + "\n"
    atomic_write_bytes(out / "comparison.md", table.encode())
    top = {"streams": streams, "arms": totals, "reward_rate_per_stream": rates}
    write_json(out / "summary.json", top)
    return top


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def comparison_table(rows: dict[str, dict[str, Any]]) -> str:
    """Markdown table, one row per arm, from summaries or aggregates."""
    head = (
        "| arm | decisions | cumulative reward | reward rate | regret | head accuracy "
        "| latency p50 / p99 ms | drift alarms | adaptations |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    body = []
    for arm, s in rows.items():
        lat = s["latency_ms"]
        alarms = s["drift_alarms"]
        n_alarms = alarms if isinstance(alarms, int) else len(alarms)
        adapted = s.get("adaptations_swapped")
        if adapted is None:
            adapted = sum(e["status"] == "swapped" for e in s["adaptations"])
        body.append(
            f"| {arm} | {s['decisions']} | {s['cumulative_reward']:.0f} "
            f"| {_fmt(s['reward_rate'], '.1%')} | {s['regret']:.0f} "
            f"| {_fmt(s['head_accuracy'], '.1%')} "
            f"| {_fmt(lat['p50'], '.3f')} / {_fmt(lat['p99'], '.3f')} "
            f"| {n_alarms} | {adapted} |"
        )
    return head + "\n".join(body) + "\n"
