"""Adaptation trains a copy of the encoder with the pretext loss and leaves the original alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from client.runtime.adaptation import AdaptConfig, AdaptError, adapt_encoder
from common.serialize import load_encoder

Stream = Callable[..., tuple[np.ndarray, np.ndarray]]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_pretext_steps_lower_the_loss_on_a_copy(tiny_encoder: Path, make_stream: Stream) -> None:
    x, _ = make_stream(128, 3)
    encoder = load_encoder(tiny_encoder)
    out = adapt_encoder(encoder, x, AdaptConfig(steps=24, warmup_steps=4, batch_size=32, lr=1e-3))
    assert out.steps >= 28 and out.seconds > 0
    assert out.loss_after < out.loss_before  # the pretext loss on the newest windows fell
    assert not _same(out.encoder, encoder)
    assert _same(encoder, load_encoder(tiny_encoder))  # the original is untouched
    assert not out.encoder.training and not any(p.requires_grad for p in out.encoder.parameters())


def test_zero_steps_leave_the_encoder_as_it_was(tiny_encoder: Path, make_stream: Stream) -> None:
    x, _ = make_stream(64, 4)
    encoder = load_encoder(tiny_encoder)
    out = adapt_encoder(encoder, x, AdaptConfig(steps=0, warmup_steps=2, batch_size=32))
    assert _same(out.encoder, encoder)  # only the throw-away projector trained
    assert out.loss_after == pytest.approx(out.loss_before)


@pytest.mark.parametrize("method", ["byol", "simsiam"])
def test_other_methods_adapt_too(tiny_encoder: Path, make_stream: Stream, method: str) -> None:
    x, _ = make_stream(64, 5)
    out = adapt_encoder(
        load_encoder(tiny_encoder),
        x,
        AdaptConfig(method=method, steps=2, warmup_steps=1, batch_size=32),
    )
    assert np.isfinite([out.loss_before, out.loss_after]).all()


def test_bad_settings_and_buffers_are_refused(tiny_encoder: Path) -> None:
    encoder = load_encoder(tiny_encoder)
    with pytest.raises(AdaptError, match="at least 2 windows"):
        adapt_encoder(encoder, np.zeros((1, 6, 32), np.float32), AdaptConfig())
    with pytest.raises(AdaptError, match="steps must be >= 0"):
        AdaptConfig(steps=-1)
    with pytest.raises(AdaptError, match="batch size"):
        AdaptConfig(batch_size=1)
    with pytest.raises(AdaptError, match="learning rates"):
        AdaptConfig(lr=0)
