"""The server's aggregation of the devices' figures, checked against sums done by hand."""

from __future__ import annotations

import pytest

from server.fed_eval_summary import final_line, summarize


def _device(role: str, acc: float, n: int, loss: float, m: int) -> dict:
    return {
        "role": role,
        "accuracy": acc,
        "accuracy-samples": n,
        "knn-accuracy": acc / 2,
        "pretext-loss": loss,
        "pretext-samples": m,
        "embedding-std": 0.05,
        "embedding-samples": m,
    }


ROWS = [
    _device("train", 0.9, 100, 3.0, 10),
    _device("train", 0.6, 300, 4.0, 30),
    _device("evaluate", 0.5, 50, 5.0, 10),
    {"role": "evaluate", "pretext-loss": 6.0, "pretext-samples": 20, "embedding-std": 0.1,
     "embedding-samples": 20},  # unlabeled: no accuracy
    {"role": "train", "skipped": "local data cannot be evaluated: only 2 windows"},
]  # fmt: skip


def test_weighted_mean_min_and_median_overall_and_per_role() -> None:
    s = summarize(ROWS)
    assert (s["devices"], s["labeled_devices"]) == (4, 3)
    assert s["accuracy"] == pytest.approx((0.9 * 100 + 0.6 * 300 + 0.5 * 50) / 450)
    assert (s["accuracy_min"], s["accuracy_median"]) == (0.5, 0.6)
    assert s["pretext_loss"] == pytest.approx((30 + 120 + 50 + 120) / 70)
    assert s["pretext_loss_median"] == pytest.approx(4.5)
    assert s["train"]["accuracy"] == pytest.approx((90 + 180) / 400)
    assert s["train"]["devices"] == 2  # the skipped device measured nothing
    assert s["evaluate"]["labeled_devices"] == 1 and s["evaluate"]["accuracy"] == 0.5
    assert s["evaluate"]["embedding_std"] == pytest.approx((0.05 * 10 + 0.1 * 20) / 30)
    assert s["skipped"] == ["local data cannot be evaluated: only 2 windows"]


def test_the_final_line_names_the_unseen_devices_against_random_init() -> None:
    last = {**summarize(ROWS), "round": 15}
    initial = {**summarize([_device("evaluate", 0.25, 50, 7.0, 10)]), "round": 0}
    line = final_line({"federated_evaluation": last, "federated_evaluation_initial": initial})
    assert line is not None
    assert "2 unseen devices, round 15" in line
    assert "personal head 50.0%" in line and "random init 25.0%" in line
    assert final_line({}) is None
