"""train_epochs and make_optimizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from common.augment import make_augment
from common.models import build_encoder
from common.ssl import SSLMethod, build_method
from common.train import TrainResult, make_optimizer, train_epochs


def _setup(
    name: str = "simclr", shape: tuple[int, ...] = (6, 32)
) -> tuple[SSLMethod, nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    if len(shape) == 2:
        enc = build_encoder("cnn1d", in_channels=shape[0], widths=(16, 32), kernel_sizes=(5, 3))
        aug = make_augment("sensor")
    else:
        enc = build_encoder("resnet2d", in_channels=shape[0], widths=(8, 16))
        aug = make_augment("image")
    method = build_method(name, enc)
    return method, aug, make_optimizer(method, lr=1e-3)


def _x(n: int, shape: tuple[int, ...] = (6, 32)) -> np.ndarray:
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


def test_counts_and_progress() -> None:
    method, aug, opt = _setup()
    seen: list[tuple[int, float]] = []
    r = train_epochs(method, _x(50), aug, epochs=2, batch_size=16, optimizer=opt,
                     progress=lambda e, loss: seen.append((e, loss)))  # fmt: skip
    assert isinstance(r, TrainResult)
    assert r.steps == 6 and r.samples == 96  # 3 full batches per epoch, last 2 dropped
    assert [e for e, _ in seen] == [1, 2]
    assert np.isfinite(r.loss) and np.isfinite(r.first_loss) and r.seconds > 0


def test_no_drop_last_and_small_data() -> None:
    method, aug, opt = _setup()
    r = train_epochs(method, _x(33), aug, epochs=1, batch_size=16, optimizer=opt, drop_last=False)
    assert r.steps == 2 and r.samples == 32  # the trailing single sample has no pair: skipped
    r = train_epochs(method, _x(5), aug, epochs=2, batch_size=16, optimizer=opt)
    assert r.steps == 2 and r.samples == 10  # N < batch_size: one batch of all N
    with pytest.raises(ValueError):
        train_epochs(method, _x(1), aug, epochs=1, batch_size=16, optimizer=opt)


def test_max_steps_stops_within_and_across_epochs() -> None:
    method, aug, opt = _setup()
    r = train_epochs(method, _x(50), aug, epochs=2, batch_size=16, optimizer=opt, max_steps=4)
    assert r.steps == 4 and r.samples == 64  # 3 steps of epoch 1, 1 of epoch 2
    r = train_epochs(method, _x(50), aug, epochs=2, batch_size=16, optimizer=opt, max_steps=99)
    assert r.steps == 6  # the epochs end first
    # The first steps are those of the unbounded run: same seed, same batches.
    a, aug_a, opt_a = _setup()
    b, aug_b, opt_b = _setup()
    first = train_epochs(a, _x(50), aug_a, epochs=1, batch_size=16, optimizer=opt_a, max_steps=2)
    full = train_epochs(b, _x(50), aug_b, epochs=1, batch_size=16, optimizer=opt_b)
    assert first.first_loss == full.first_loss and first.steps == 2
    with pytest.raises(ValueError, match="max_steps"):
        train_epochs(a, _x(50), aug_a, epochs=1, batch_size=16, optimizer=opt_a, max_steps=-1)


def test_seeded_runs_are_identical() -> None:
    results = []
    for _ in range(2):
        method, aug, opt = _setup("byol")
        results.append(train_epochs(method, _x(40), aug, epochs=1, batch_size=8, optimizer=opt,
                                    seed=7).loss)  # fmt: skip
    assert results[0] == results[1]


def test_nan_input_raises() -> None:
    method, aug, opt = _setup()
    x = _x(32)
    x[3, 0, 5] = np.nan
    with pytest.raises(FloatingPointError, match="step 1"):
        train_epochs(method, x, aug, epochs=1, batch_size=32, optimizer=opt)


def test_images_and_optimizers() -> None:
    method, aug, opt = _setup("simclr", (1, 8, 8))
    r = train_epochs(method, torch.rand(20, 1, 8, 8), aug, epochs=1, batch_size=10, optimizer=opt)
    assert r.steps == 2
    assert isinstance(make_optimizer(method, "sgd", lr=0.1), torch.optim.SGD)
    assert isinstance(make_optimizer(method, "adamw", weight_decay=1e-4), torch.optim.AdamW)
    with pytest.raises(ValueError, match="lamb"):
        make_optimizer(method, "lamb")


def test_byol_optimizer_skips_frozen_target() -> None:
    method, _, opt = _setup("byol")
    in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
    target = [*method.target_encoder.parameters()]  # type: ignore[union-attr]
    assert target and all(id(p) not in in_opt for p in target)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_train_and_seeded_augment() -> None:
    method, aug, opt = _setup("byol")
    r = train_epochs(method, _x(64), aug, epochs=1, batch_size=16, optimizer=opt, device="cuda")
    assert r.steps == 4 and np.isfinite(r.loss)
    x = torch.as_tensor(_x(8)).cuda()
    a = aug(x, generator=torch.Generator().manual_seed(1))
    b = aug(x.cpu(), generator=torch.Generator().manual_seed(1))
    assert a.is_cuda and torch.allclose(a.cpu(), b, atol=1e-5)
