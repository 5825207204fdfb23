"""SimSiam: SGD lowers its loss, the stop-gradient cuts the target branch, and its federated
split shares the whole model (there is no target network)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.augment import SensorAugment
from common.fedalgo.registry import build_fed_algorithm
from common.models import CNN1DEncoder
from common.ssl import build_method
from common.ssl.simsiam import SimSiam
from common.train import make_optimizer

FEDAVG = build_fed_algorithm("fedavg")  # its split is the method's own


def _simsiam() -> SimSiam:
    torch.manual_seed(0)
    method = build_method(
        "simsiam", CNN1DEncoder(in_channels=6, widths=(16, 32), kernel_sizes=(5, 3))
    )
    assert isinstance(method, SimSiam)
    return method


def _data(n: int = 64) -> Tensor:
    """Two latent 'activities' (a slow and a fast sinusoid) plus noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 6.28, 32)
    freq = torch.where(torch.rand(n, 1, 1, generator=g) < 0.5, 1.0, 4.0)
    phase = torch.rand(n, 6, 1, generator=g) * 6.28
    return torch.sin(freq * t + phase) + 0.1 * torch.randn(n, 6, 32, generator=g)


def test_a_few_sgd_steps_lower_the_loss() -> None:
    m = _simsiam()
    opt = make_optimizer(m, "sgd", lr=0.05)
    x, aug, g = _data(), SensorAugment(), torch.Generator().manual_seed(0)
    v1, v2 = aug(x, generator=g), aug(x, generator=g)
    with torch.no_grad():
        before = float(m.training_loss(v1, v2))
    for _ in range(15):
        loss = m.training_loss(aug(x, generator=g), aug(x, generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(m.training_loss(v1, v2))
    assert 0.0 <= after < 0.9 * before <= 4.0


class _ConstantPredictor(nn.Module):
    """Ignores its input: the online branch then no longer reaches the encoder."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.randn(dim))

    def forward(self, z: Tensor) -> Tensor:
        return self.p.expand_as(z)


def test_stop_gradient_the_target_branch_gets_no_gradient() -> None:
    m = _simsiam()
    m.predictor = _ConstantPredictor(128)
    v1, v2 = torch.randn(8, 6, 32), torch.randn(8, 6, 32)
    m.training_loss(v1, v2).backward()
    # The only path from the encoder to the loss left is the target z: cut by stop-gradient.
    assert all(p.grad is None or not p.grad.any() for p in m.encoder.parameters())
    assert all(p.grad is None or not p.grad.any() for p in m.projector.parameters())
    assert m.predictor.p.grad is not None and m.predictor.p.grad.abs().sum() > 0

    # The same loss without the stop-gradient does train the encoder through z: the check
    # above is not vacuous.
    m.zero_grad()
    z = m.projector(m.encoder(torch.cat([v1, v2])))
    p = m.predictor(z)
    z1, z2 = z.chunk(2)
    p1, p2 = p.chunk(2)
    no_sg = -(F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean())
    no_sg.backward()
    assert any(p.grad is not None and p.grad.any() for p in m.encoder.parameters())


def test_federated_split_shares_the_whole_model() -> None:
    m = _simsiam()
    assert FEDAVG.local_keys(m) == []
    assert FEDAVG.shared_keys(m) == list(m.state_dict())
    assert any(k.startswith("predictor.") for k in FEDAVG.shared_keys(m))


def test_predictor_is_a_bottleneck_and_views_must_match() -> None:
    m = _simsiam()
    first = m.predictor.layers[0]
    assert isinstance(first, nn.Linear) and first.out_features == 128 // 4
    with pytest.raises(ValueError):
        m.training_loss(torch.randn(4, 6, 32), torch.randn(5, 6, 32))
