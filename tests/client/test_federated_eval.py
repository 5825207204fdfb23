"""A device's evaluation of the global encoder on its own data: the figures, their
protocol, and what it says when it cannot evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from client.federated_eval import (
    EvalSettings,
    embedding_std,
    evaluate_on_device,
    few_label_split,
)
from common.config import RunConfig
from common.local_round import initial_global_arrays

SHAPE = (6, 32)
CFG = RunConfig(dataset="digits", batch_size=16)


def _stream(n: int = 120, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Windows in time order, in runs of one activity; each class its own signal level."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n // classes)
    x = rng.normal(0, 0.3, (len(y), *SHAPE)) + y[:, None, None]
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def arrays() -> list[np.ndarray]:
    return initial_global_arrays(CFG, SHAPE)


def test_every_figure_with_its_count(arrays: list[np.ndarray]) -> None:
    x, y = _stream()
    got = evaluate_on_device(CFG, arrays, x, y, EvalSettings(labels_per_class=5))
    assert got["pretext-samples"] == 24 and got["embedding-samples"] == 120  # 20 % held out
    assert np.isfinite(got["pretext-loss"]) and 0 < got["embedding-std"] < 1
    # 15 fitted (5 per class), and their 5 overlapping neighbours (5, 39, 45, 79, 85) left out
    assert got["labels-used"] == 15 and got["accuracy-samples"] == 120 - 15 - 5
    assert got["accuracy"] > 0.9 and got["knn-accuracy"] > 0.5  # separable; chance is 1/3
    again = evaluate_on_device(CFG, arrays, x, y, EvalSettings(labels_per_class=5))
    assert again == got  # seeded: the same figures every time


def test_unlabeled_data_gives_the_label_free_figures_only(arrays: list[np.ndarray]) -> None:
    x, _ = _stream()
    got = evaluate_on_device(CFG, arrays, x, None, EvalSettings())
    assert set(got) == {"pretext-loss", "pretext-samples", "embedding-std", "embedding-samples"}


def test_labels_out_of_range_are_named_and_the_rest_is_measured(arrays: list[np.ndarray]) -> None:
    x, y = _stream()
    y[5] = 17
    got = evaluate_on_device(CFG, arrays, x, y, EvalSettings(label_range=12))
    assert "labels out of range: [17]" in str(got["skipped"])
    assert "pretext-loss" in got and "accuracy" not in got


def test_too_little_data_is_said(arrays: list[np.ndarray]) -> None:
    x, y = _stream()
    assert "only 3 windows" in str(
        evaluate_on_device(CFG, arrays, x[:3], y[:3], EvalSettings())["skipped"]
    )
    one_class = evaluate_on_device(CFG, arrays, x[:40], y[:40], EvalSettings())
    assert "too few labeled windows" in str(one_class["skipped"])
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    assert "non-finite" in str(evaluate_on_device(CFG, arrays, bad, y, EvalSettings())["skipped"])


def test_classes_beyond_eval_classes_are_ignored_not_refused(arrays: list[np.ndarray]) -> None:
    x, y = _stream(classes=4)
    got = evaluate_on_device(CFG, arrays, x, y, EvalSettings(labels_per_class=5, eval_classes=3))
    assert got["labels-used"] == 15 and "skipped" not in got


def test_calibration_split_takes_the_first_labels_and_skips_overlapping_neighbours() -> None:
    y = np.array([0, 0, 0, 1, 1, -1, 0, 1, 1, 0])
    keep = y >= 0
    train, test = few_label_split(y, keep, 2)
    assert train.tolist() == [0, 1, 3, 4]
    assert test.tolist() == [6, 7, 8, 9]  # 2 and 5 are neighbours of fitted windows; 5 unlabeled
    assert few_label_split(np.array([0, 1]), np.array([True, True]), 5)[0].size == 0


def test_embedding_std_is_the_collapse_indicator() -> None:
    rng = np.random.default_rng(0)
    d = 64
    healthy = embedding_std(rng.normal(size=(4000, d)))
    assert abs(healthy - 1 / np.sqrt(d)) < 0.01
    assert embedding_std(np.tile(rng.normal(size=(1, d)), (100, 1))) < 1e-6
