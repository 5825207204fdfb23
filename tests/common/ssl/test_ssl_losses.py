"""NT-Xent and FedX's relational loss against independent double-loop references;
negative cosine loss."""

from __future__ import annotations

import pytest
import torch
from ssl_reference import reference_ntxent, reference_relational

from common.ssl import NegativeCosineLoss, NTXentLoss, RelationalLoss


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_ntxent_matches_reference(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    got = NTXentLoss(temperature)(z1, z2).item()
    assert got == pytest.approx(reference_ntxent(z1, z2, temperature), abs=1e-5)


def test_ntxent_low_for_aligned_pairs() -> None:
    z = torch.randn(16, 8)
    assert NTXentLoss(0.1)(z, z) < NTXentLoss(0.1)(z, torch.randn(16, 8))
    with pytest.raises(ValueError):
        NTXentLoss(0.0)


def test_negative_cosine() -> None:
    p = torch.randn(4, 8, requires_grad=True)
    z = torch.randn(4, 8, requires_grad=True)
    loss = NegativeCosineLoss()
    assert loss(p, p.detach() * 3).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(p, -p.detach()).item() == pytest.approx(4.0, abs=1e-6)
    loss(p, z).backward()
    assert p.grad is not None and z.grad is None  # target branch detached inside


@pytest.mark.parametrize(("temperature", "anchors"), [(0.1, 6), (0.5, 1)])
def test_relational_loss_matches_reference(temperature: float, anchors: int) -> None:
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    a = torch.randn(anchors, 7, generator=g)
    got = RelationalLoss(temperature)(x1, x2, a).item()
    assert got == pytest.approx(reference_relational(x1, x2, a, temperature), abs=1e-5)


def test_relational_loss_is_zero_when_the_views_relate_alike() -> None:
    x, a = torch.randn(8, 4), torch.randn(10, 4)
    assert RelationalLoss(0.1)(x, 2 * x, a).item() == pytest.approx(0.0, abs=1e-6)
    assert RelationalLoss(0.1)(x, torch.randn(8, 4), a).item() > 0.01
    with pytest.raises(ValueError, match="anchors"):
        RelationalLoss(0.1)(x, x, torch.randn(10))
