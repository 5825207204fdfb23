"""BYOL specifics: frozen EMA target, tau schedule, federated state split, global update."""

from __future__ import annotations

import pytest
import torch

from common.fedalgo.registry import build_fed_algorithm
from common.models import CNN1DEncoder
from common.ssl import BYOL
from common.train import make_optimizer

FEDAVG = build_fed_algorithm("fedavg")  # its split is the method's own


def _byol(**hp: object) -> BYOL:
    torch.manual_seed(0)
    return BYOL(CNN1DEncoder(widths=(16, 32), kernel_sizes=(5, 3)), **hp)  # type: ignore[arg-type]


def _flat(params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in params])


def _step(m: BYOL) -> None:
    opt = make_optimizer(m, lr=1e-2)
    loss = m.training_loss(torch.randn(8, 6, 32), torch.randn(8, 6, 32))
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in m._target_params())
    opt.step()


def test_target_not_trained_by_gradient_but_follows_online_by_ema() -> None:
    m = _byol(tau=0.9)
    assert all(not p.requires_grad for p in m._target_params())
    assert torch.equal(_flat(m._target_params()), _flat(m._online_params()))
    target0 = _flat(m._target_params())
    _step(m)
    assert torch.equal(_flat(m._target_params()), target0)  # optimizer step left it alone
    online = _flat(m._online_params())
    gap_before = (online - target0).norm()
    m.after_step()
    target1 = _flat(m._target_params())
    assert torch.allclose(target1, 0.9 * target0 + 0.1 * online, atol=1e-6)
    assert (online - target1).norm() < gap_before
    assert int(m.ema_step) == 1


def test_cosine_tau_schedule() -> None:
    m = _byol(tau=0.9, tau_schedule="cosine", total_steps=10)
    assert m.current_tau() == pytest.approx(0.9)
    m.ema_step.fill_(10)
    assert m.current_tau() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        _byol(tau_schedule="cosine")


def test_shared_keys_exclude_predictor_and_target() -> None:
    m = _byol()
    shared, local = FEDAVG.shared_keys(m), FEDAVG.local_keys(m)
    state = m.state_dict()
    assert shared and all(k.startswith(("encoder.", "projector.")) for k in shared)
    assert all(state[k].is_floating_point() for k in shared)
    assert any(k.startswith("predictor.") for k in local)
    assert any(k.startswith("target_encoder.") for k in local)
    assert "ema_step" in local
    assert sorted(shared + local) == sorted(state)
    assert shared == FEDAVG.shared_keys(_byol())  # stable order


@pytest.mark.parametrize("mode", ["keep", "copy"])
def test_on_global_update(mode: str) -> None:
    m = _byol(target_on_global=mode)
    target_before = _flat(m._target_params())
    with torch.no_grad():
        for p in m._online_params():
            p.add_(1.0)  # stands in for loading new global weights
    m.on_global_update()
    if mode == "keep":
        assert torch.equal(_flat(m._target_params()), target_before)
    else:
        assert torch.equal(_flat(m._target_params()), _flat(m._online_params()))
