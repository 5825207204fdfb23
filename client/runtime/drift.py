"""Drift detection on the embedding stream: has the device's input left its reference?

A device's stream is never stationary in the naive sense: its user walks for five
minutes, then sits for an hour, so the mean embedding swings with the activity mix
and a test on embedding means would fire at every change of activity. What should
raise an alarm is an embedding that no reference window explains: a new user, a
sensor mounted rotated, a broken channel. So each embedding is scored by how sparse
its neighbourhood among the reference windows is, and a one-sided CUSUM (Page,
Biometrika 1954) accumulates the evidence:

1. ``fit(reference)``: standardize each dimension with the reference's mean and std;
   note each reference window's distance to its k-th nearest other window (k-distance).
2. Novelty of an embedding: the log of its k-distance over the mean k-distance of
   its k nearest reference windows, a local density ratio (LOF, Breunig et al.,
   SIGMOD 2000), so a window of a broad activity cluster scores like one of a tight
   cluster. The ratio becomes a conformal p-value against the same ratio of every
   reference window scored with itself left out (Vovk, Gammerman & Shafer,
   "Algorithmic Learning in a Random World", 2005) and then a normal score
   ``u = Phi^-1(1 - p)``: on data exchangeable with the reference, ``u`` is about
   N(0, 1) whatever the activity mix, with no distributional assumption.
3. CUSUM: ``g <- max(0, g + min(u, clip) - slack)``; an alarm when ``g > threshold``,
   after which ``g`` restarts from 0. ``u`` cannot exceed ``Phi^-1(1 - 1/(2(n + 1)))``
   (3.0 for n = 400 reference windows), so one glitch cannot raise an alarm: the
   defaults need at least 5 unexplained windows in a row, more when mixed with normal ones.

False alarms: on stationary data the increments have mean about ``-slack``; for
unit-variance Gaussian increments Siegmund's approximation gives an average run of
about ``exp(2 slack (h + 1.17)) / (2 slack^2)``, 10^6 steps for the defaults (slack
0.5, h 12), and each +1 on ``threshold`` multiplies it by about e. Measured (see
tests/client/runtime/test_drift.py for the streams): no alarm in 50,000 steps of a
synthetic six-activity stream whose activity changes in runs of about 100 steps, nor
in 50,000 i.i.d. steps; on real HAPT recordings (users 1-20, reference a random half of
a user's windows, the other half replayed in time order) 2 alarms in about 4,400
windows, so real streams, autocorrelated and with activities the reference may have
seen only briefly, alarm far more often than the i.i.d. figure: fit the reference on a
few hundred windows covering the user's usual activities, and raise ``threshold`` if
alarms are costly. Detection, same setups: a mean shift of half a reference std on
every dimension within 12-70 steps, a full std within 5-17; a HAPT sensor rotated 90
degrees about z within 5-20 windows and 30 degrees within 5-28, another user's windows
within 6-77, through a random-init encoder and a federated SimCLR encoder alike.
Delay is about ``threshold / (E[u] - slack)`` steps.

Per window: one distance to each reference window (n x D multiply-adds, about 50 us
for 400 x 256 in numpy); memory n x D.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from common.errors import BadInputError


class DriftError(BadInputError):
    """A reference or embedding the detector cannot use (shape, NaN, too few windows)."""


def _distances(x: np.ndarray, ref: np.ndarray, ref_sq: np.ndarray) -> np.ndarray:
    """Euclidean distances (N, M) between rows of x and rows of ref."""
    d2 = (x * x).sum(axis=1)[:, None] - 2.0 * x @ ref.T + ref_sq[None]
    result: np.ndarray = np.sqrt(np.maximum(d2, 0.0))
    return result


class _Reference:
    """Standardized reference embeddings, their k-distances and the calibration scores."""

    def __init__(self, ref: np.ndarray, k: int) -> None:
        self.k = k
        self.mean = ref.mean(axis=0)
        std = ref.std(axis=0)
        # Dead dimensions (a unit that is always 0) must not turn noise into a shift.
        self.inv_std = 1.0 / np.maximum(std, 1e-3 * max(float(np.median(std)), 1e-12))
        self.points = (ref - self.mean) * self.inv_std
        self.sq = (self.points * self.points).sum(axis=1)
        n = len(self.points)
        near = np.empty((n, k), dtype=np.int64)
        kdist = np.empty(n)
        for lo in range(0, n, 512):  # rows in chunks: never an n x n matrix at once
            d = _distances(self.points[lo : lo + 512], self.points, self.sq)
            d[np.arange(len(d)), np.arange(lo, lo + len(d))] = np.inf  # leave itself out
            nn = np.argpartition(d, k - 1, axis=1)[:, :k]
            near[lo : lo + len(d)] = nn
            kdist[lo : lo + len(d)] = np.take_along_axis(d, nn, axis=1).max(axis=1)
        self.kdist = np.maximum(kdist, 1e-12)
        # Each reference window scored exactly as a new one will be, itself left out.
        self.calibration = np.sort(np.log(self.kdist / self.kdist[near].mean(axis=1)))
        # p = (#calibration scores >= s + 1/2) / (n + 1) takes n + 1 values: tabulate
        # their normal scores Phi^-1(1 - p).
        inv_cdf = NormalDist().inv_cdf
        self.normal_scores = np.array(
            [inv_cdf(1.0 - (n - r + 0.5) / (n + 1)) for r in range(n + 1)]
        )

    def novelty(self, z: np.ndarray) -> np.ndarray:
        """Normal scores (N,) of the conformal p-values of the local density ratios."""
        x = (z - self.mean) * self.inv_std
        d = _distances(x, self.points, self.sq)
        nn = np.argpartition(d, self.k - 1, axis=1)[:, : self.k]
        kdist = np.take_along_axis(d, nn, axis=1).max(axis=1)
        ratio = np.log(np.maximum(kdist, 1e-12) / self.kdist[nn].mean(axis=1))
        rank = np.searchsorted(self.calibration, ratio, side="left")  # scores below
        result: np.ndarray = self.normal_scores[rank]
        return result


class DriftDetector:
    """Local-density novelty, conformal p-values, one-sided CUSUM; build with ``fit``.

    ``update(z)`` takes one embedding and returns True on the step an alarm fires;
    ``statistic`` is the CUSUM value, ``alarms`` the steps (0-based) that fired.
    """

    def __init__(self, model: _Reference, slack: float, threshold: float, clip: float) -> None:
        self._model = model
        self.slack, self.threshold, self.clip = float(slack), float(threshold), float(clip)
        self.dim = int(model.mean.shape[0])
        self.statistic = 0.0
        self.n_seen = 0
        self.alarms: list[int] = []

    @classmethod
    def fit(
        cls,
        reference: np.ndarray,
        *,
        neighbours: int = 5,
        slack: float = 0.5,
        threshold: float = 12.0,
        clip: float = 3.0,
        max_reference: int = 2000,
        seed: int = 0,
    ) -> DriftDetector:
        """Fit on reference embeddings (N, D): N >= 10 x ``neighbours``, a few hundred is better.

        More than ``max_reference`` windows are subsampled (seeded): the per-window cost
        is one distance to each reference window.
        """
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim != 2:
            raise DriftError(f"expected reference embeddings (N, D), got shape {ref.shape}")
        if not np.isfinite(ref).all():
            raise DriftError("reference embeddings hold NaN or Inf values")
        if neighbours < 1 or len(ref) < 10 * neighbours:
            raise DriftError(
                f"{neighbours} neighbours need at least {10 * neighbours} reference "
                f"embeddings, got {len(ref)}"
            )
        if not (slack >= 0 and threshold > 0 and clip > slack):
            raise DriftError("need slack >= 0, threshold > 0 and clip > slack")
        if len(ref) > max_reference:
            keep = np.random.default_rng(seed).choice(len(ref), max_reference, replace=False)
            ref = ref[np.sort(keep)]
        if float(ref.std(axis=0).max()) <= 1e-12 * max(1.0, float(np.abs(ref).max())):
            raise DriftError("reference embeddings are (nearly) identical: nothing to compare to")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):  # threaded BLAS spin-waits on a busy device
            model = _Reference(ref, int(neighbours))
        return cls(model, slack, threshold, clip)

    def score(self, z: np.ndarray) -> np.ndarray:
        """Novelty (N,) of embeddings (N, D) or (D,): about N(0, 1) on data like the reference."""
        arr = np.asarray(z, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise DriftError(
                f"expected embeddings (D,) or (N, D) with D={self.dim}, got {np.shape(z)}"
            )
        if not np.isfinite(arr).all():
            raise DriftError("embeddings hold NaN or Inf values")
        return self._model.novelty(arr)

    def update(self, z: np.ndarray) -> bool:
        """Feed one embedding (D,); True if this step raises an alarm (then g restarts)."""
        u = float(self.score(z)[0])
        self.statistic = max(0.0, self.statistic + min(u, self.clip) - self.slack)
        step = self.n_seen
        self.n_seen += 1
        if self.statistic > self.threshold:
            self.alarms.append(step)
            self.statistic = 0.0
            return True
        return False

    def run(self, z: np.ndarray) -> list[int]:
        """Feed embeddings (N, D) in order; the steps (counted by ``n_seen``) that fired."""
        first = len(self.alarms)
        for row in np.asarray(z):
            self.update(row)
        return self.alarms[first:]

    def reset(self) -> None:
        """Forget the CUSUM evidence (e.g. after adapting); the reference stays."""
        self.statistic = 0.0
