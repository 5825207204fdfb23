"""NT-Xent against an independent double-loop reference; negative cosine loss."""

from __future__ import annotations

import math

import pytest
import torch

from common.ssl import NegativeCosineLoss, NTXentLoss


def _reference_ntxent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    z = [*z1.tolist(), *z2.tolist()]
    n2, n = len(z), len(z1)

    def cos(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))

    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        denom = sum(math.exp(cos(z[i], z[k]) / t) for k in range(n2) if k != i)
        total += -math.log(math.exp(cos(z[i], z[pos]) / t) / denom)
    return total / n2


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_ntxent_matches_reference(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    got = NTXentLoss(temperature)(z1, z2).item()
    assert got == pytest.approx(_reference_ntxent(z1, z2, temperature), abs=1e-5)


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
