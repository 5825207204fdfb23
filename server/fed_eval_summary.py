"""The server's summary of the devices' evaluation figures: for every figure, the mean
weighted by each device's count, and the minimum and median across devices; over all
devices and per role (``train``, ``evaluate``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from common.messages import EVALUATE, TRAIN

# figure reported by a device -> the count it is weighted by
FIGURES = {
    "accuracy": "accuracy-samples",
    "knn-accuracy": "accuracy-samples",
    "pretext-loss": "pretext-samples",
    "embedding-std": "embedding-samples",
}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``rows``: one dict per device that replied (its figures, ``role``, ``skipped``)."""
    out = stats(rows)
    out[TRAIN] = stats([r for r in rows if r.get("role") == TRAIN])
    out[EVALUATE] = stats([r for r in rows if r.get("role") == EVALUATE])
    out["skipped"] = sorted({str(r["skipped"]) for r in rows if r.get("skipped")})[:10]
    return out


def stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    measured = [r for r in rows if "pretext-loss" in r]
    out: dict[str, Any] = {
        "devices": len(measured),
        "labeled_devices": sum(1 for r in measured if "accuracy" in r),
    }
    for figure, count in FIGURES.items():
        have = [r for r in measured if figure in r]
        key = figure.replace("-", "_")
        if not have:
            out[key] = None
            continue
        values = np.array([float(r[figure]) for r in have])
        weights = np.array([float(r[count]) for r in have])
        out[key] = float(np.average(values, weights=weights))
        out[f"{key}_min"] = float(values.min())
        out[f"{key}_median"] = float(np.median(values))
    return out


def final_line(summary: dict[str, Any]) -> str | None:
    """The run summary's line: the last evaluated round on the devices (the unseen ones
    when there are any) against the random-init encoder; None when nothing was evaluated."""
    last, initial = summary.get("federated_evaluation"), summary.get("federated_evaluation_initial")
    if not last:
        return None
    role, who = (EVALUATE, "unseen") if (last.get(EVALUATE) or {}).get("devices") else ("", "")
    part = last.get(role, last) if role else last
    before = ((initial or {}).get(role, initial) if role else initial) or {}
    head = f"{part['devices']} {who + ' ' if who else ''}devices, round {last['round']}"
    if part.get("accuracy") is None:
        return f"federated evaluation ({head}): pretext loss {part['pretext_loss']:.4f}, no labels"
    text = f"personal head {part['accuracy']:.1%}, kNN {part['knn_accuracy']:.1%}"
    if before.get("accuracy") is not None:
        text += f" (random init {before['accuracy']:.1%}, {before['knn_accuracy']:.1%})"
    return f"federated evaluation ({head}): {text}"
