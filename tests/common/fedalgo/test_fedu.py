"""FedU: the online encoder always takes the global weights; the predictor takes the global one
only while the client's divergence from the global model is below the threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import common.local_round as lr
from common.config import RunConfig
from common.fedalgo import FedU, build_fed_algorithm
from common.local_round import build_model, initial_global_arrays, run_local_round, shared_keys
from common.train import TrainResult

T = torch.tensor


def _weights(enc: float, pred: float) -> dict[str, torch.Tensor]:
    return {"encoder.w": T([enc, 0.0]), "projector.w": T([0.0]), "predictor.w": T([pred])}


@pytest.mark.parametrize("threshold", [2.5, 3.0])  # the divergence is exactly 3.0
def test_predictor_kept_local_at_or_above_the_threshold(threshold: float) -> None:
    merged, info = FedU(threshold=threshold).merge(_weights(3.0, 9.0), _weights(0.0, 1.0))
    assert info["divergence"] == pytest.approx(3.0)
    assert info["fedu-local-predictor"] == 1
    assert torch.equal(merged["predictor.w"], T([1.0]))  # the client's own
    assert torch.equal(merged["encoder.w"], T([3.0, 0.0]))  # always the global encoder


def test_predictor_replaced_below_the_threshold() -> None:
    merged, info = FedU(threshold=3.5).merge(_weights(3.0, 9.0), _weights(0.0, 1.0))
    assert info["fedu-local-predictor"] == 0
    assert torch.equal(merged["predictor.w"], T([9.0]))
    assert torch.equal(merged["encoder.w"], T([3.0, 0.0]))


def test_first_participation_takes_the_global_predictor() -> None:
    glob = _weights(3.0, 9.0)
    merged, info = FedU(threshold=0.0).merge(glob, None)
    assert all(torch.equal(merged[k], glob[k]) for k in glob) and info == {}
    with pytest.raises(ValueError, match="threshold"):
        build_fed_algorithm("fedu", threshold=-1.0)


def _no_training(*args: object, **kwargs: object) -> TrainResult:
    return TrainResult(loss=1.0, first_loss=1.0, steps=0, samples=0, seconds=0.0)


@pytest.mark.parametrize(("threshold", "kept"), [(1e6, False), (0.0, True)])
def test_local_round_sends_global_encoder_and_chosen_predictor(
    monkeypatch: pytest.MonkeyPatch, threshold: float, kept: bool
) -> None:
    cfg = RunConfig(
        method="simsiam",
        fed_algorithm="fedu",
        fedu_threshold=threshold,
        local_epochs=1,
        batch_size=16,
    )
    x = np.random.default_rng(1).normal(size=(32, 6, 32)).astype(np.float32)
    glob1 = initial_global_arrays(cfg, x.shape[1:])
    first = run_local_round(cfg, x, glob1, None, server_round=1, partition_id=0)
    local_prev = [g + d for g, d in zip(glob1, first.delta, strict=True)]

    monkeypatch.setattr(lr, "train_epochs", _no_training)
    glob2 = [g + 0.05 for g in glob1]
    res = run_local_round(cfg, x, glob2, first.state, server_round=2, partition_id=0)
    assert res.local_metrics["fedu-local-predictor"] == int(kept)
    keys = shared_keys(cfg, build_model(cfg, x.shape[1:])[0])
    for key, d, p, g in zip(keys, res.delta, local_prev, glob2, strict=True):
        if key.startswith("predictor.") and kept:
            assert np.allclose(d, p - g, atol=1e-6)  # started from its own predictor
        else:
            assert not d.any()  # started from the global weights
