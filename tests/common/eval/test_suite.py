"""evaluate_encoder runs every protocol on one embedding and scores on unseen data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from common.data.registry import load_dataset
from common.eval.protocol import HAPT_TEST_USERS, HAPT_TRAIN_USERS, evaluation_split
from common.eval.suite import EvaluationError, check_encoder_fits, evaluate_encoder
from common.models.registry import build_encoder


@pytest.fixture(scope="module")
def digits_result() -> dict:
    torch.manual_seed(0)
    ds = load_dataset("digits")
    encoder = build_encoder("resnet2d", in_channels=1)
    return evaluate_encoder(encoder, ds, evaluation_split(ds), seeds=(0, 1))


def test_all_protocols_on_digits(digits_result: dict) -> None:
    res = digits_result["results"]
    assert set(res) == {"linear", "knn", "few-label"}
    for name in ("linear", "knn"):
        assert 0.0 <= res[name]["accuracy"] <= 1.0 and 0.0 <= res[name]["macro_f1"] <= 1.0
    # Random convolutional features of 8x8 digits are far better than chance (10 %).
    assert res["linear"]["accuracy"] > 0.5 and res["knn"]["accuracy"] > 0.5
    assert res["linear"]["test_samples"] == digits_result["probe_test_samples"] > 300
    few = res["few-label"]
    assert list(few) == ["0.01", "0.05", "0.1"]
    assert few["0.01"]["labels_used"] < few["0.05"]["labels_used"] < few["0.1"]["labels_used"]
    for entry in few.values():
        assert [r["seed"] for r in entry["runs"]] == [0, 1]
        accs = [r["accuracy"] for r in entry["runs"]]
        assert all(0.0 <= a <= 1.0 for a in accs)
        assert entry["accuracy_mean"] == pytest.approx(np.mean(accs))
        assert entry["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert set(digits_result["descriptions"]) == set(res)
    json.dumps(digits_result)  # JSON-able as it is


def test_only_the_requested_protocols_run() -> None:
    ds = load_dataset("digits")
    encoder = build_encoder("resnet2d", in_channels=1, widths=(8, 8, 8))
    out = evaluate_encoder(encoder, ds, evaluation_split(ds), protocols=("knn",))
    assert list(out["results"]) == ["knn"]
    with pytest.raises(EvaluationError, match="unknown protocol"):
        evaluate_encoder(encoder, ds, evaluation_split(ds), protocols=("knn", "svm"))
    with pytest.raises(EvaluationError, match="fractions"):
        evaluate_encoder(encoder, ds, evaluation_split(ds), fractions=(0.0,))


def test_encoder_that_does_not_fit_the_data_is_named() -> None:
    ds = load_dataset("digits")
    with pytest.raises(EvaluationError, match="6 input channels"):
        check_encoder_fits(build_encoder("cnn1d", in_channels=6), ds)
    with pytest.raises(
        EvaluationError, match=r"does not accept digits samples of shape \(1, 8, 8\)"
    ):
        check_encoder_fits(build_encoder("cnn1d", in_channels=1), ds)
    assert check_encoder_fits(build_encoder("resnet2d", in_channels=1, widths=(8, 8, 8)), ds) == 8


def test_hapt_split_leaves_users_out() -> None:
    ds = load_dataset("hapt")
    assert ds.client is not None
    split = evaluation_split(ds)
    train_users = set(np.unique(ds.client[split.probe_train]).tolist())
    test_users = set(np.unique(ds.client[split.probe_test]).tolist())
    assert not train_users & test_users
    assert train_users == set(HAPT_TRAIN_USERS) and test_users == set(HAPT_TEST_USERS)
    # The suite scores exactly these samples: 6 basic activities, every probe-test window.
    small = build_encoder("cnn1d", in_channels=6, widths=(8, 8), kernel_sizes=(5, 3))
    out = evaluate_encoder(small, ds, split, protocols=("knn",))
    assert out["probe_test_samples"] == len(split.probe_test)
    assert out["probe_train_samples"] == len(split.probe_train)
    assert out["classes"] == 6 and "users 22-30" in out["protocol"]
