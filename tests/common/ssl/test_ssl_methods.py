"""SimCLR and BYOL: the loss goes down, the federated key split, registry errors."""

from __future__ import annotations

import pytest
import torch

from common.augment import SensorAugment
from common.fedalgo.registry import build_fed_algorithm
from common.models import CNN1DEncoder
from common.ssl import BYOL, METHODS, FedX, SimCLR, SimSiam, SSLMethod, build_method
from common.train import make_optimizer

FEDAVG = build_fed_algorithm("fedavg")  # its split is the method's own


def _small_encoder() -> CNN1DEncoder:
    torch.manual_seed(0)
    return CNN1DEncoder(in_channels=6, widths=(16, 32), kernel_sizes=(5, 3))


def _data(n: int = 64) -> torch.Tensor:
    """Two latent 'activities' (a slow and a fast sinusoid) plus noise."""
    g = torch.Generator().manual_seed(0)
    t = torch.linspace(0, 6.28, 32)
    freq = torch.where(torch.rand(n, 1, 1, generator=g) < 0.5, 1.0, 4.0)
    phase = torch.rand(n, 6, 1, generator=g) * 6.28
    return torch.sin(freq * t + phase) + 0.1 * torch.randn(n, 6, 32, generator=g)


def _fixed_loss(method: SSLMethod, v1: torch.Tensor, v2: torch.Tensor) -> float:
    with torch.no_grad():
        return float(method.training_loss(v1, v2))


@pytest.mark.parametrize("name", ["simclr", "byol", "fedx"])
def test_a_few_steps_lower_the_loss(name: str) -> None:
    method = build_method(name, _small_encoder())
    opt = make_optimizer(method, lr=3e-3)
    x, aug, g = _data(), SensorAugment(), torch.Generator().manual_seed(0)
    v1, v2 = aug(x, generator=g), aug(x, generator=g)
    before = _fixed_loss(method, v1, v2)
    for _ in range(15):
        loss = method.training_loss(aug(x, generator=g), aug(x, generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_step()
    assert _fixed_loss(method, v1, v2) < 0.9 * before


def test_simclr_shares_everything() -> None:
    m = SimCLR(_small_encoder(), temperature=0.2)
    keys = FEDAVG.shared_keys(m)
    assert keys == list(m.state_dict())
    assert FEDAVG.local_keys(m) == []
    assert all(k.startswith(("encoder.", "projector.")) for k in keys)


def test_registry_and_unknown_names() -> None:
    assert METHODS == {"simclr": SimCLR, "byol": BYOL, "simsiam": SimSiam, "fedx": FedX}
    assert build_method("simclr", _small_encoder()).name == "simclr"
    with pytest.raises(ValueError, match="byol"):
        build_method("moco", _small_encoder())
    with pytest.raises(TypeError):
        build_method("simclr", _small_encoder(), tau=0.5)


def test_views_must_match() -> None:
    m = SimCLR(_small_encoder())
    with pytest.raises(ValueError):
        m.training_loss(torch.randn(4, 6, 32), torch.randn(5, 6, 32))
