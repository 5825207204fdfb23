"""FedEMA: mu = min(lambda * ||W_g - W_k||, 1) with lambda = tau / (first divergence), the
blend it applies, and the scaler kept on the client across rounds through its state blob."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import common.local_round as lr
from common.config import RunConfig
from common.fedalgo import FedEMA, build_fed_algorithm
from common.local_round import build_model, initial_global_arrays, run_local_round, shared_keys
from common.train import TrainResult

T = torch.tensor


def _weights(enc: list[float], proj: float, pred: float) -> dict[str, torch.Tensor]:
    return {"encoder.w": T(enc), "projector.w": T([proj]), "predictor.w": T([pred])}


def test_mu_and_blend_match_a_hand_computation() -> None:
    algo = FedEMA(tau=0.7)
    local = _weights([0.0, 0.0], 1.0, 1.0)
    # ||W_g - W_k|| over encoder + projector: sqrt(3^2 + 4^2 + 0^2) = 5; the predictor's
    # difference (100) must not count.
    glob = _weights([3.0, 4.0], 1.0, 101.0)
    merged, info = algo.merge(glob, local)
    assert info["divergence"] == pytest.approx(5.0)
    assert algo.scaler == pytest.approx(0.7 / 5.0)  # lambda = tau / divergence, once
    assert info["fedema-mu"] == pytest.approx(0.7)  # so mu = tau at the first blend
    # local <- mu * local + (1 - mu) * global, predictor included
    assert torch.allclose(merged["encoder.w"], T([0.3 * 3.0, 0.3 * 4.0]))
    assert torch.allclose(merged["projector.w"], T([1.0]))
    assert torch.allclose(merged["predictor.w"], T([0.7 * 1.0 + 0.3 * 101.0]))

    # Later rounds reuse lambda: divergence 2.5 -> mu = 0.14 * 2.5 = 0.35.
    merged, info = algo.merge(_weights([1.5, 2.0], 1.0, 2.0), local)
    assert info["fedema-mu"] == pytest.approx(0.35)
    assert algo.scaler == pytest.approx(0.14)
    assert torch.allclose(merged["encoder.w"], T([0.65 * 1.5, 0.65 * 2.0]))
    assert torch.allclose(merged["predictor.w"], T([0.35 * 1.0 + 0.65 * 2.0]))


def test_mu_is_clipped_at_one() -> None:
    algo = FedEMA(tau=0.5)
    algo.load_state_dict({"scaler": 0.1})
    local = _weights([0.0, 0.0], 0.0, 7.0)
    merged, info = algo.merge(_weights([30.0, 40.0], 0.0, 9.0), local)  # 0.1 * 50 = 5 -> 1
    assert info["fedema-mu"] == 1.0
    assert all(torch.equal(merged[k], local[k]) for k in local)  # the client keeps its own


def test_first_participation_starts_from_global_and_sets_no_scaler() -> None:
    algo = FedEMA()
    glob = _weights([3.0, 4.0], 1.0, 2.0)
    merged, info = algo.merge(glob, None)
    assert all(torch.equal(merged[k], glob[k]) for k in glob) and info == {}
    assert algo.scaler is None and algo.state_dict() == {}
    # A zero divergence has nothing to blend and postpones the scaler instead of dividing by 0.
    merged, info = algo.merge(glob, {k: v.clone() for k, v in glob.items()})
    assert algo.scaler is None and info["fedema-mu"] == 0.0
    assert all(torch.equal(merged[k], glob[k]) for k in glob)


def test_bad_tau_and_mismatched_state_are_refused() -> None:
    with pytest.raises(ValueError, match="tau"):
        FedEMA(tau=0.0)
    with pytest.raises(ValueError, match="tau"):
        build_fed_algorithm("fedema", tau=1.5)
    with pytest.raises(ValueError, match="shared keys"):
        FedEMA().merge(_weights([1.0, 1.0], 0.0, 0.0), {"encoder.w": T([0.0, 0.0])})


def _blob(state: bytes) -> dict:
    return torch.load(io.BytesIO(state), weights_only=True)


def _no_training(*args: object, **kwargs: object) -> TrainResult:
    return TrainResult(loss=1.0, first_loss=1.0, steps=0, samples=0, seconds=0.0)


def test_scaler_persists_in_the_state_blob_across_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = RunConfig(method="byol", fed_algorithm="fedema", local_epochs=1, batch_size=16)
    x = np.random.default_rng(0).normal(size=(32, 6, 32)).astype(np.float32)
    glob1 = initial_global_arrays(cfg, x.shape[1:])
    keys = shared_keys(cfg, build_model(cfg, x.shape[1:])[0])
    assert any(k.startswith("predictor.") for k in keys)  # FedEMA shares BYOL's predictor

    # Round 1, first participation: trains from the global model, no scaler yet.
    r1 = run_local_round(cfg, x, glob1, None, server_round=1, partition_id=0)
    s1 = _blob(r1.state)
    assert "scaler" not in s1["algorithm"] and "fedema-mu" not in r1.local_metrics
    assert list(s1["shared"]) == keys  # the client's own weights, kept for the next blend
    prev = [s1["shared"][k].numpy() for k in keys]
    assert all(np.allclose(p, g + d) for p, g, d in zip(prev, glob1, r1.delta, strict=True))

    # Round 2: the scaler is set from this divergence, so mu = tau. Without training the
    # delta is then exactly mu * (local_prev - global): the blend is where training starts,
    # and what is sent is still local - global.
    monkeypatch.setattr(lr, "train_epochs", _no_training)
    glob2 = [g + 0.01 * (i % 3 + 1) for i, g in enumerate(glob1)]
    online = [i for i, k in enumerate(keys) if k.startswith(("encoder.", "projector."))]
    dist2 = float(
        np.sqrt(sum(((glob2[i] - prev[i]).astype(np.float64) ** 2).sum() for i in online))
    )
    r2 = run_local_round(cfg, x, glob2, r1.state, server_round=2, partition_id=0)
    s2 = _blob(r2.state)
    assert s2["algorithm"]["scaler"] == pytest.approx(0.7 / dist2, rel=1e-5)
    assert r2.local_metrics["fedema-mu"] == pytest.approx(0.7)
    for d, p, g in zip(r2.delta, prev, glob2, strict=True):
        assert np.allclose(d, 0.7 * (p - g), atol=1e-6)

    # Round 3: the scaler comes back from the blob unchanged and sets mu.
    prev3 = [s2["shared"][k].numpy() for k in keys]
    glob3 = [g - 0.02 for g in glob2]
    dist3 = float(
        np.sqrt(sum(((glob3[i] - prev3[i]).astype(np.float64) ** 2).sum() for i in online))
    )
    r3 = run_local_round(cfg, x, glob3, r2.state, server_round=3, partition_id=0)
    assert _blob(r3.state)["algorithm"]["scaler"] == s2["algorithm"]["scaler"]
    mu3 = min(s2["algorithm"]["scaler"] * dist3, 1.0)
    assert r3.local_metrics["fedema-mu"] == pytest.approx(mu3, rel=1e-5)
    for d, p, g in zip(r3.delta, prev3, glob3, strict=True):
        assert np.allclose(d, mu3 * (p - g), atol=1e-6)
