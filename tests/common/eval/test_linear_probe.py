"""The linear probe recovers a linearly separable problem and refuses degenerate input."""

from __future__ import annotations

import numpy as np
import pytest

from common.eval.linear_probe import linear_probe


def test_separable_problem_is_solved_and_noise_is_not() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 4))
    x = rng.normal(size=(800, 16))
    y = (x @ w).argmax(axis=1)
    res = linear_probe(x[:600], y[:600], x[600:], y[600:])
    assert res["accuracy"] > 0.95 and res["macro_f1"] > 0.9
    noise = linear_probe(x[:600], rng.integers(0, 4, 600), x[600:], rng.integers(0, 4, 200))
    assert noise["accuracy"] < 0.45


def test_degenerate_inputs_are_refused() -> None:
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="two classes"):
        linear_probe(x, np.zeros(10, dtype=int), x, np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="non-empty"):
        linear_probe(x[:0], np.zeros(0, dtype=int), x, np.zeros(10, dtype=int))
