"""PNG plots of a run's per-round figures (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_rounds(rows: list[dict[str, Any]], path: str | Path, title: str) -> Path:
    """Pretext loss per round (failed rounds marked) and seconds per round."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ok = [r for r in rows if r.get("completed") and r.get("train_loss") is not None]
    bad = [r for r in rows if not r.get("completed")]
    ax1.plot([r["round"] for r in ok], [r["train_loss"] for r in ok], marker="o", label="completed")
    for r in bad:
        ax1.axvline(r["round"], color="red", alpha=0.4, linestyle="--")
    if bad:
        ax1.plot([], [], color="red", linestyle="--", label="aborted round")
    ax1.set_xlabel("round")
    ax1.set_ylabel("pretext loss (client mean)")
    ax1.legend()
    ax2.bar([r["round"] for r in rows], [r.get("seconds", 0.0) for r in rows])
    ax2.set_xlabel("round")
    ax2.set_ylabel("seconds")
    return _save(fig, path, title)


def plot_federated_evaluation(
    rows: list[dict[str, Any]], initial: dict[str, Any] | None, path: str | Path, title: str
) -> Path | None:
    """Per round: the devices' personal-head accuracy (unseen and training devices), the
    server's linear probe where it ran, and the devices' pretext loss, from each row's
    ``federated_evaluation`` (round 0: the random-init encoder). None when no round was
    evaluated."""
    points = [(0, initial)] if initial else []
    points += [
        (r["round"], r["federated_evaluation"]) for r in rows if r.get("federated_evaluation")
    ]
    if not points:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for role, label in (("evaluate", "unseen devices"), ("train", "training devices")):
        pts = [
            (rnd, e[role]["accuracy"])
            for rnd, e in points
            if e.get(role, {}).get("accuracy") is not None
        ]
        if pts:
            ax1.plot(*zip(*pts, strict=True), marker="o", label=label)
    probe = [
        (rnd, e["server_linear_probe"]["accuracy"])
        for rnd, e in points
        if e.get("server_linear_probe", {}).get("accuracy") is not None
    ]
    if probe:
        ax1.plot(*zip(*probe, strict=True), marker="s", ls="--", label="server linear probe")
    ax1.set_xlabel("round (0 = random-init encoder)")
    ax1.set_ylabel("accuracy")
    ax1.legend()
    loss = [(rnd, e["pretext_loss"]) for rnd, e in points if e.get("pretext_loss") is not None]
    if loss:
        ax2.plot(*zip(*loss, strict=True), marker="o")
    ax2.set_xlabel("round")
    ax2.set_ylabel("held-out pretext loss (devices' mean)")
    return _save(fig, path, title)


def plot_series(
    values: list[Any] | dict[str, list[Any]], path: str | Path, xlabel: str, ylabel: str, title: str
) -> Path:
    """Figures per round (or step), marked points on a line; a dict draws one named line
    per entry (None: no point)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    series = values if isinstance(values, dict) else {"": values}
    for name, ys in series.items():
        ax.plot(range(len(ys)), [np.nan if v is None else v for v in ys], marker="o", label=name)
    if len(series) > 1:
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return _save(fig, path, title)


def _save(fig: Any, path: str | Path, title: str) -> Path:
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
