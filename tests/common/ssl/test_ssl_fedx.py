"""FedX: its loss is the sum of the paper's four terms (against double-loop references),
the teacher is the frozen global model of the round, and it never leaves the client."""

from __future__ import annotations

import copy

import pytest
import torch
from ssl_reference import reference_ntxent, reference_relational
from torch import nn

from common.fedalgo.registry import build_fed_algorithm
from common.models import CNN1DEncoder
from common.ssl import FedX

T = 0.3


def _fedx() -> FedX:
    torch.manual_seed(0)
    # Layer-normalised heads: each sample's embedding is its own (the default batch
    # normalisation would tie it to the batch), so the reference can embed views apart.
    encoder = CNN1DEncoder(in_channels=6, widths=(8, 16), kernel_sizes=(5, 3))
    return FedX(encoder, temperature=T, proj_norm="layer", pred_norm="layer")


def _views(seed: int, n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, 32, generator=g), torch.randn(n, 6, 32, generator=g)


def _nudge(method: FedX) -> None:
    """Move the trained weights away from the global ones, as local steps would."""
    with torch.no_grad():
        for p in method.parameters():
            p.add_(0.05 * torch.randn_like(p))


@torch.no_grad()
def _reference_loss(
    student: FedX, teacher: FedX | None, v1: torch.Tensor, v2: torch.Tensor, va: torch.Tensor | None
) -> float:
    """The paper's loss from embeddings computed one view at a time (eval mode: no batch
    statistics), each term by its double-loop reference."""

    def proj(m: FedX, x: torch.Tensor) -> torch.Tensor:
        return m.projector(m.encoder(x))

    z1, z2 = proj(student, v1), proj(student, v2)
    loss = reference_ntxent(z1, z2, T)
    if va is not None:
        loss += reference_relational(z1, z2, proj(student, va), T)
    if teacher is not None:
        p1, p2 = student.predictor(z1), student.predictor(z2)
        loss += reference_ntxent(p1, proj(teacher, v2), T)
        if va is not None:
            loss += reference_relational(p1, p2, proj(teacher, va), T)
    return loss


def test_the_loss_is_the_local_and_global_terms_of_the_paper() -> None:
    method = _fedx()
    method.on_global_update()
    global_model = copy.deepcopy(method)
    _nudge(method)
    method.eval()
    (a1, a2), (b1, b2) = _views(1), _views(2)
    # First step of the round: no anchors yet, so contrastive terms only.
    got = method.training_loss(a1, a2).item()
    assert got == pytest.approx(_reference_loss(method, global_model, a1, a2, None), rel=1e-4)
    # Second step: the first step's view 1 are the anchors of both relational terms.
    got = method.training_loss(b1, b2).item()
    assert got == pytest.approx(_reference_loss(method, global_model, b1, b2, a1), rel=1e-4)


def test_without_a_global_model_only_the_local_terms_apply() -> None:
    method = _fedx().eval()
    (a1, a2), (b1, b2) = _views(1), _views(2)
    assert method.training_loss(a1, a2).item() == pytest.approx(
        _reference_loss(method, None, a1, a2, None), rel=1e-4
    )
    assert method.training_loss(b1, b2).item() == pytest.approx(
        _reference_loss(method, None, b1, b2, a1), rel=1e-4
    )


def test_the_teacher_is_frozen_and_never_shared_or_saved() -> None:
    method = _fedx()
    keys = list(method.state_dict())
    assert method.teacher is None
    method.on_global_update()
    teacher = method.teacher
    assert teacher is not None and not teacher.training
    assert list(method.state_dict()) == keys  # nothing of the teacher is saved
    shared = build_fed_algorithm("fedavg").shared_keys(method)
    assert shared == keys and any(k.startswith("predictor.") for k in shared)
    frozen = copy.deepcopy(teacher.state_dict())
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    for seed in range(3):
        loss = method.training_loss(*_views(seed))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, frozen[k]) for k, v in teacher.state_dict().items())
    trained = nn.Sequential(method.encoder, method.projector).state_dict()
    assert not all(torch.equal(v, frozen[k]) for k, v in trained.items())
    # The next round's global model replaces it, and the anchors start afresh.
    method.on_global_update()
    assert method.teacher is not teacher
    assert method.eval().training_loss(*_views(7)).item() == pytest.approx(
        _reference_loss(method, copy.deepcopy(method), *_views(7), None), rel=1e-4
    )
