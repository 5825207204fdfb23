"""Mean ± s.e. over pretraining seeds: against numpy by hand, on trees of benchmark shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.benchmark.seeds import combine_trees, first_reaching, mean_curve, mean_se


def _arms(lin: float, knn: float, few: float) -> dict:  # type: ignore[type-arg]
    return {
        "federated": {
            "linear": {"accuracy": lin, "n_test": 100},
            "knn": {"accuracy": knn},
            "few-label": {"0.01": {"accuracy_mean": few, "labels_used": 7}},
        },
        "method": "simclr",
    }


def test_every_number_is_averaged_with_its_standard_error() -> None:
    runs = [_arms(0.90, 0.80, 0.70), _arms(0.94, 0.84, 0.71), _arms(0.95, 0.83, 0.75)]
    mean, se = combine_trees(runs)
    lin = np.array([0.90, 0.94, 0.95])
    assert mean["federated"]["linear"]["accuracy"] == pytest.approx(lin.mean())
    assert se["federated"]["linear"]["accuracy"] == pytest.approx(lin.std(ddof=1) / math.sqrt(3))
    few = np.array([0.70, 0.71, 0.75])
    assert mean["federated"]["few-label"]["0.01"]["accuracy_mean"] == pytest.approx(few.mean())
    assert mean["federated"]["linear"]["n_test"] == 100  # equal counts stay themselves
    assert mean["method"] == "simclr" and se["method"] is None


def test_one_seed_has_no_standard_error() -> None:
    assert mean_se([0.93]) == (0.93, None)
    mean, se = combine_trees([_arms(0.9, 0.8, 0.7)])
    assert mean["federated"]["knn"]["accuracy"] == 0.8
    assert se["federated"]["knn"]["accuracy"] is None


def test_curves_are_averaged_point_by_point_and_cut_to_the_shortest() -> None:
    a = [[0, 0.90], [1, 0.92], [2, 0.96]]
    b = [[0, 0.88], [1, 0.94]]
    np.testing.assert_allclose(mean_curve([a, b]), [[0, 0.89], [1, 0.93]])
    assert first_reaching(a, 0.95) == 2
    assert first_reaching(a, 0.97) is None
    assert first_reaching([[0, 0.99], [1, 0.5]], 0.95) is None  # the start does not count
