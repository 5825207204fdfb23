"""The drift detector stays quiet while the stream is like its reference and fires when it is not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from client.runtime.drift import DriftDetector, DriftError
from common.data.registry import load_dataset
from common.models.registry import build_encoder, default_arch_for

D, K = 128, 6


class Mixture:
    """Embeddings of K "activities": clusters of different spread, each on its own subspace."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.means = rng.standard_normal((K, D))
        self.spread = rng.uniform(0.5, 2.0, K)
        self.basis = rng.standard_normal((K, D, 8)) * 0.5

    def sample(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        low = np.einsum("ndk,nk->nd", self.basis[labels], rng.standard_normal((len(labels), 8)))
        noise = 0.3 * rng.standard_normal((len(labels), D))
        return self.means[labels] + self.spread[labels, None] * (low + noise)


def activity_runs(n: int, rng: np.random.Generator, mean_run: int = 100) -> np.ndarray:
    """An activity sequence: each activity lasts a geometric number of steps (mean 100)."""
    out: list[int] = []
    while len(out) < n:
        out += [int(rng.integers(K))] * int(rng.geometric(1 / mean_run))
    return np.array(out[:n])


@pytest.fixture(scope="module")
def world() -> tuple[Mixture, DriftDetector, np.ndarray]:
    mix = Mixture()
    rng = np.random.default_rng(1)
    ref = mix.sample(rng.integers(K, size=400), rng)
    return mix, DriftDetector.fit(ref), ref


def _fresh(det: DriftDetector) -> DriftDetector:
    det.reset()
    det.n_seen, det.alarms = 0, []
    return det


@pytest.mark.parametrize("seed", [10, 11])
@pytest.mark.parametrize("kind", ["iid", "activity runs"])
def test_quiet_on_5000_stationary_steps(
    world: tuple[Mixture, DriftDetector, np.ndarray], seed: int, kind: str
) -> None:
    mix, det, _ = world
    rng = np.random.default_rng(seed)
    labels = rng.integers(K, size=5000) if kind == "iid" else activity_runs(5000, rng)
    assert _fresh(det).run(mix.sample(labels, rng)) == []
    assert det.n_seen == 5000


@pytest.mark.parametrize(("shift", "within"), [(1.0, 40), (0.5, 150)])
def test_fires_soon_after_a_mean_shift(
    world: tuple[Mixture, DriftDetector, np.ndarray], shift: float, within: int
) -> None:
    mix, det, ref = world
    rng = np.random.default_rng(5)
    stream = mix.sample(activity_runs(800, rng), rng)
    # every dimension moves by `shift` of its reference std, in a random direction
    stream[300:] += shift * ref.std(axis=0) * rng.choice([-1.0, 1.0], size=D)
    alarms = _fresh(det).run(stream)
    assert alarms, "no alarm after the shift"
    assert 300 <= alarms[0] < 300 + within, alarms


def test_score_is_calibrated_on_new_stationary_data(
    world: tuple[Mixture, DriftDetector, np.ndarray],
) -> None:
    mix, det, _ = world
    rng = np.random.default_rng(7)
    u = det.score(mix.sample(rng.integers(K, size=3000), rng))
    assert abs(u.mean()) < 0.35 and 0.7 < u.std() < 1.3
    far = det.score(mix.means[0] + 5.0)  # a point no activity explains
    assert far[0] > 3.0


def _rotate_z(x: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate both xyz triplets (accelerometer, gyroscope) about the z axis."""
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t), 0.0], [np.sin(t), np.cos(t), 0.0], [0.0, 0.0, 1.0]])
    out = x.copy()
    for start in (0, 3):
        out[:, start : start + 3] = np.einsum("ij,njl->nil", rot, x[:, start : start + 3])
    return out.astype(np.float32)


def test_rotated_sensor_and_another_user_fire_the_same_user_does_not() -> None:
    """Real HAPT windows of user 1 (and user 11) through a random-init encoder."""
    ds = load_dataset("hapt")
    x = ds.x[ds.client == 1]
    torch.manual_seed(0)
    arch, hparams = default_arch_for((6, 128))
    encoder = build_encoder(arch, **hparams).eval()
    with torch.inference_mode():
        z = encoder(torch.from_numpy(x)).numpy()
        z_rot = encoder(torch.from_numpy(_rotate_z(x, 90.0))).numpy()
        z_other = encoder(torch.from_numpy(ds.x[ds.client == 11])).numpy()
    order = np.random.default_rng(0).permutation(len(x))
    ref, rest = np.sort(order[: len(x) // 2]), np.sort(order[len(x) // 2 :])
    assert DriftDetector.fit(z[ref]).run(z[rest]) == []  # the rest of the recording, in order
    for drifted in (z_rot[rest], z_other):
        alarms = DriftDetector.fit(z[ref]).run(drifted)
        assert alarms and alarms[0] < 60, alarms


def test_alarm_restarts_the_evidence(world: tuple[Mixture, DriftDetector, np.ndarray]) -> None:
    mix, det, _ = world
    far = mix.means[0] + 10.0
    det = _fresh(det)
    fired = [det.update(far) for _ in range(20)]
    first = fired.index(True)
    assert det.alarms[0] == first and det.statistic < det.threshold
    # one odd window is clipped and cannot raise an alarm on its own
    det = _fresh(det)
    for _ in range(4):  # not even four in a row
        assert det.update(mix.means[0] + 1e6) is False
    assert det.statistic <= 4 * (det.clip - det.slack)


def test_bad_input_is_refused(world: tuple[Mixture, DriftDetector, np.ndarray]) -> None:
    _, det, ref = world
    with pytest.raises(DriftError, match="D=128"):
        det.update(np.zeros(D + 1))
    with pytest.raises(DriftError, match="NaN or Inf"):
        det.update(np.full(D, np.nan))
    with pytest.raises(DriftError, match="at least 50 reference"):
        DriftDetector.fit(ref[:49])
    with pytest.raises(DriftError, match="NaN or Inf"):
        DriftDetector.fit(np.where(np.eye(400, D) > 0, np.nan, ref))
    with pytest.raises(DriftError, match="identical"):
        DriftDetector.fit(np.ones((100, D)))
    with pytest.raises(DriftError, match="slack"):
        DriftDetector.fit(ref, slack=2.0, clip=1.0)
