"""Mean ± standard error of ``fedssl benchmark`` figures over pretraining seeds.

Each seed gives a whole tree of figures (arm -> protocol -> value); every number in it is
averaged over the seeds and its standard error kept in a tree of the same shape, so the
report reads both by the same path.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def mean_se(values: list[float]) -> tuple[float, float | None]:
    """The mean and its standard error (None from one value)."""
    m = float(np.mean(values))
    if len(values) < 2:
        return m, None
    return m, float(np.std(values, ddof=1) / math.sqrt(len(values)))


def combine_trees(trees: list[Any]) -> tuple[Any, Any]:
    """The mean tree and the standard-error tree of trees of one shape.

    Numbers are averaged; anything else (a count of clients, a label) is taken from the
    first tree, and its standard error is None.
    """
    first = trees[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(t, dict) and k in t for t in trees)]
        pairs = {k: combine_trees([t[k] for t in trees]) for k in keys}
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return mean_se([float(t) for t in trees])
    return first, None


def mean_curve(curves: list[list[list[float]]]) -> list[list[float]]:
    """Point by point mean of curves ``[[x, y], ...]`` (cut to the shortest)."""
    n = min(len(c) for c in curves)
    return [[float(np.mean([c[i][0] for c in curves])), float(np.mean([c[i][1] for c in curves]))]
            for i in range(n)]  # fmt: skip


def first_reaching(curve: list[list[float]], target: float) -> float | None:
    """The first x after the start at which the curve reaches ``target``."""
    return next((x for x, y in curve[1:] if y >= target), None)
