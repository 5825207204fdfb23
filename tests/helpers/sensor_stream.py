"""Fixtures of the device-runtime and device-replay tests: a synthetic sensor stream and a
tiny encoder (each folder's conftest.py imports them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from common.models.registry import build_encoder
from common.serialize import save_encoder

SHAPE = (6, 32)  # acc xyz, gyro xyz; short windows keep the tests fast
K = 4
TINY = {"in_channels": 6, "widths": [8, 16], "kernel_sizes": [5, 3]}


def sensor_windows(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Windows (N, 6, 32) of K "activities": each has its own gravity direction, its own
    oscillation frequency and amplitude, plus noise, like a phone on a moving person."""
    gravity = np.array([[1, 0, 0], [0.7, 0.7, 0], [0.6, 0, 0.8], [0.9, -0.3, 0.3]], float)
    freq, amp = np.array([0.5, 1.5, 3.0, 0.0]), np.array([0.6, 0.3, 0.8, 0.05])
    t = np.arange(SHAPE[1]) / 16.0
    phase = rng.uniform(0, 2 * np.pi, (len(labels), 1, 1))
    wave = np.sin(2 * np.pi * freq[labels, None, None] * t + phase)  # (N, 1, L)
    x = np.empty((len(labels), *SHAPE))
    x[:, :3] = gravity[labels, :, None] + amp[labels, None, None] * wave
    x[:, 3:] = 0.5 * amp[labels, None, None] * np.cos(2 * np.pi * freq[labels, None, None] * t)
    x += 0.1 * rng.standard_normal(x.shape)
    return x.astype(np.float32)


def activity_labels(n: int, rng: np.random.Generator, mean_run: int = 15) -> np.ndarray:
    """Labels in runs (each activity lasts a geometric number of windows), all K present."""
    out: list[int] = []
    while len(out) < n:
        out += [int(rng.integers(K))] * int(rng.geometric(1 / mean_run))
    labels = np.array(out[:n])
    labels[: 4 * K] = np.repeat(np.arange(K), 4)  # every class early on
    return labels


@pytest.fixture(scope="session")
def make_stream() -> Callable[[int, int], tuple[np.ndarray, np.ndarray]]:
    """``make_stream(n, seed)`` -> (windows (n, 6, 32), labels (n,)) in time order."""

    def make(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        y = activity_labels(n, rng)
        return sensor_windows(y, rng), y

    return make


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random-init 1D CNN (out_dim 32) saved as a fedssl encoder file."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("device") / "encoder.pt"
    meta = {"input_shape": list(SHAPE), "method": "simclr"}
    save_encoder(path, build_encoder("cnn1d", **TINY), "cnn1d", TINY, meta)
    return path


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    """The runtime sets torch to one thread; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
