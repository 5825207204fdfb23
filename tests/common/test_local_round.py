"""One client's round: a real delta of the shared weights, state kept for the next
round, and nothing non-finite ever leaves the device."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from common.config import RunConfig
from common.fedalgo.registry import build_fed_algorithm
from common.local_round import build_model, initial_global_arrays, run_local_round

FEDAVG = build_fed_algorithm("fedavg")  # its split is the method's own


def _data(n: int = 96) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6, 64)).astype(np.float32)


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_round_returns_delta_and_state(method: str) -> None:
    cfg = RunConfig(method=method, local_epochs=1, batch_size=32)
    x = _data()
    glob = initial_global_arrays(cfg, x.shape[1:])
    res = run_local_round(cfg, x, glob, None, server_round=1, partition_id=0)
    assert res.num_examples == len(x)
    assert [d.shape for d in res.delta] == [g.shape for g in glob]
    assert all(d.dtype == np.float32 for d in res.delta)
    assert max(float(np.abs(d).max()) for d in res.delta) > 0
    state = torch.load(io.BytesIO(res.state), weights_only=True)
    assert state["optimizer"]["state"], "optimizer moments are kept on the device"
    method_obj, _, _ = build_model(cfg, x.shape[1:])
    assert set(state["local"]) == set(FEDAVG.local_keys(method_obj))
    if method == "byol":
        assert any("predictor" in k for k in state["local"])
        assert not any("predictor" in k or "target" in k for k in FEDAVG.shared_keys(method_obj))
    # The next round resumes the optimizer where it stopped.
    res2 = run_local_round(cfg, x, glob, res.state, server_round=2, partition_id=0)
    state2 = torch.load(io.BytesIO(res2.state), weights_only=True)
    step1 = next(iter(state["optimizer"]["state"].values()))["step"]
    step2 = next(iter(state2["optimizer"]["state"].values()))["step"]
    assert float(step2) == 2 * float(step1)


def test_without_optimizer_state_each_round_starts_adam_afresh() -> None:
    cfg = RunConfig(local_epochs=1, batch_size=32, keep_optimizer_state=False)
    x = _data()
    glob = initial_global_arrays(cfg, x.shape[1:])
    res = run_local_round(cfg, x, glob, None, server_round=1, partition_id=0)
    kept = run_local_round(RunConfig(local_epochs=1, batch_size=32), x, glob, None,
                           server_round=1, partition_id=0)  # fmt: skip
    assert torch.load(io.BytesIO(res.state), weights_only=True)["optimizer"] == {}
    assert len(res.state) < len(kept.state) / 10  # the moments were most of it
    # Round 2 from the slim state trains exactly like a client that kept nothing.
    again = run_local_round(cfg, x, glob, res.state, server_round=2, partition_id=0)
    fresh = run_local_round(cfg, x, glob, None, server_round=2, partition_id=0)
    for a, b in zip(again.delta, fresh.delta, strict=True):
        np.testing.assert_array_equal(a, b)


def test_non_finite_data_never_produces_an_update() -> None:
    cfg = RunConfig(local_epochs=1, batch_size=32)
    x = _data()
    x[5, 0, 3] = np.nan
    glob = initial_global_arrays(cfg, x.shape[1:])
    with pytest.raises(FloatingPointError, match="1 non-finite"):
        run_local_round(cfg, x, glob, None, server_round=1, partition_id=4)


def test_diverging_training_never_produces_an_update() -> None:
    cfg = RunConfig(local_epochs=3, batch_size=32, learning_rate=1e30)
    x = _data()
    glob = [g * 1e30 for g in initial_global_arrays(cfg, x.shape[1:])]  # a poisoned model
    with pytest.raises(FloatingPointError):
        run_local_round(cfg, x, glob, None, server_round=1, partition_id=4)


def test_non_finite_weights_after_training_are_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last guard: even if training reported a finite loss, a NaN weight stays home."""
    import common.local_round as lr

    real = lr.train_epochs

    def broken_step(method, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = real(method, *args, **kwargs)
        with torch.no_grad():
            next(method.encoder.parameters()).view(-1)[0] = float("nan")
        return result

    monkeypatch.setattr(lr, "train_epochs", broken_step)
    cfg = RunConfig(local_epochs=1, batch_size=32)
    x = _data()
    glob = initial_global_arrays(cfg, x.shape[1:])
    with pytest.raises(FloatingPointError, match="1 non-finite values; not sent"):
        run_local_round(cfg, x, glob, None, server_round=1, partition_id=4)


def test_byol_client_without_state_starts_its_target_from_the_global_model() -> None:
    cfg = RunConfig(method="byol", local_epochs=1, batch_size=32)
    x = _data()
    glob = [g + 0.5 for g in initial_global_arrays(cfg, x.shape[1:])]  # not the local init
    res = run_local_round(cfg, x, glob, None, server_round=3, partition_id=1)
    state = torch.load(io.BytesIO(res.state), weights_only=True)["local"]
    method, _, _ = build_model(cfg, x.shape[1:])
    keys = FEDAVG.shared_keys(method)
    enc0 = glob[keys.index("encoder." + next(k for k in method.encoder.state_dict()))]
    target0 = next(v for k, v in state.items() if k.startswith("target") and v.ndim > 1)
    # After one short local epoch of EMA (tau 0.99) the target is still near the global
    # weights it started from, and far from this client's own random initialisation.
    assert float((target0.numpy() - enc0).__abs__().mean()) < 0.1


def test_same_seed_same_delta() -> None:
    torch.set_num_threads(1)
    cfg = RunConfig(local_epochs=1, batch_size=32)
    x = _data()
    glob = initial_global_arrays(cfg, x.shape[1:])
    a = run_local_round(cfg, x, glob, None, server_round=1, partition_id=2)
    b = run_local_round(cfg, x, glob, None, server_round=1, partition_id=2)
    c = run_local_round(cfg, x, glob, None, server_round=1, partition_id=3)
    assert all(np.array_equal(p, q) for p, q in zip(a.delta, b.delta, strict=True))
    assert not all(np.array_equal(p, q) for p, q in zip(a.delta, c.delta, strict=True))


def test_run_config_hyper_parameters_reach_the_method() -> None:
    method, _, _ = build_model(RunConfig(temperature=0.37), (6, 64))
    assert method.criterion.temperature == 0.37  # type: ignore[union-attr]
    byol, _, _ = build_model(RunConfig(method="byol", temperature=0.37), (6, 64))
    assert not hasattr(byol, "criterion") or getattr(byol.criterion, "temperature", None) is None


def test_dp_clipping_bounds_the_delta_before_it_leaves_and_reports_it() -> None:
    from common.privacy.clipping import l2_norm

    base = RunConfig(local_epochs=1, batch_size=32, max_weight=200.0)
    x = _data()
    glob = initial_global_arrays(base, x.shape[1:])
    plain = run_local_round(base, x, glob, None, server_round=1, partition_id=0)
    norm = l2_norm(plain.delta)
    assert "dp-clipped" not in plain.metrics

    small = run_local_round(
        base.replace(dp_clipping_norm=norm / 4), x, glob, None, server_round=1, partition_id=0
    )
    assert small.metrics["dp-clipped"] == 1
    assert l2_norm(small.delta) <= norm / 4 + 1e-9
    assert small.local_metrics["delta-norm"] == pytest.approx(norm, rel=1e-5)  # kept local
    for s, p in zip(small.delta, plain.delta, strict=True):
        np.testing.assert_allclose(s, p / 4, rtol=1e-3, atol=1e-7)  # same direction

    big = run_local_round(
        base.replace(dp_clipping_norm=min(norm * 2, 8.0)),
        x,
        glob,
        None,
        server_round=1,
        partition_id=0,
    )
    assert big.metrics["dp-clipped"] == 0
    for b, p in zip(big.delta, plain.delta, strict=True):
        np.testing.assert_array_equal(b, p)


def test_values_beyond_the_secagg_clipping_range_are_counted() -> None:
    """SecAgg+ clips silently at ±clipping-range after scaling by n / max-weight: the
    client counts exactly the values that will be clipped."""
    x = _data()
    cfg = RunConfig(local_epochs=1, batch_size=32, clipping_range=1e-3, max_weight=2 * len(x))
    glob = initial_global_arrays(cfg, x.shape[1:])
    res = run_local_round(cfg, x, glob, None, server_round=1, partition_id=0)
    scaled = np.concatenate([np.abs(d).ravel() for d in res.delta]) * 0.5
    expected = int((scaled > 1e-3).sum())
    assert 0 < expected < scaled.size
    assert res.metrics["clipped-values"] == expected
    roomy = run_local_round(
        cfg.replace(clipping_range=8.0), x, glob, None, server_round=1, partition_id=0
    )
    assert roomy.metrics["clipped-values"] == 0
