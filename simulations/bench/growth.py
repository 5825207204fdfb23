"""Does a long run grow? Least-squares slope with its standard error for memory, and a
median-to-median comparison for open file descriptors (``simulations.bench.load``)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass
class Growth:
    """Least-squares line through (round, value) after the warm-up.

    ``grows``: the slope is above ``limit`` and clearly not noise (more than two
    standard errors above zero). ``flat``: even slope + 2 standard errors stays within
    ``limit``. Neither: too few rounds for the noise to tell (inconclusive)."""

    slope: float  # units per round
    stderr: float  # standard error of the slope
    first_round: int
    last_round: int
    points: int
    limit: float
    grows: bool
    flat: bool

    @property
    def over_span(self) -> float:
        return self.slope * (self.last_round - self.first_round)


def fit_growth(
    rounds: list[int], values: list[float], *, warmup: int, limit: float
) -> Growth | None:
    """Slope of ``values`` over rounds after ``warmup``, judged against ``limit`` per
    round. None with fewer than 3 rounds after the warm-up."""
    pts = [(r, v) for r, v in zip(rounds, values, strict=True) if r > warmup]
    n = len(pts)
    if n < 3:
        return None
    xs, ys = [float(r) for r, _ in pts], [v for _, v in pts]
    fit = statistics.linear_regression(xs, ys)
    mean_x = statistics.fmean(xs)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sse = sum((y - fit.intercept - fit.slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    stderr = (sse / (n - 2) / sxx) ** 0.5
    grows = fit.slope > limit and fit.slope > 2 * stderr
    flat = fit.slope + 2 * stderr <= limit
    return Growth(fit.slope, stderr, pts[0][0], pts[-1][0], n, limit, grows, flat)


@dataclass
class FdGrowth:
    """Open fds near the warm-up against near the end (medians of 3 rounds each, so a
    descriptor open for an instant does not count)."""

    at_warmup: float
    at_end: float
    slack: int
    grows: bool


def fd_growth(
    rounds: list[int], fds: list[int], *, warmup: int, slack: int, window: int = 3
) -> FdGrowth | None:
    after = [f for r, f in zip(rounds, fds, strict=True) if r >= warmup]
    if len(after) < window + 1:
        return None
    start = statistics.median(after[:window])
    end = statistics.median(after[-window:])
    return FdGrowth(start, end, slack, end - start > slack)
