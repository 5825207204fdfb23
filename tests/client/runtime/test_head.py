"""The few-label head fits a handful of labels quickly and accurately, like the linear probe."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from client.runtime.head import HeadError, PersonalHead


def _proba(head: PersonalHead, z: np.ndarray) -> np.ndarray:
    """Softmax of the head's logits: what a multinomial logistic regression predicts."""
    logits = head.decision_function(z)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _clusters(
    per_class: int, seed: int, k: int = 6, d: int = 256, sep: float = 0.4
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` noisy points around each of ``k`` fixed centres (seed 0) in ``d`` dims."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((k, d)) * sep
    y = np.repeat(np.arange(k), per_class)
    return centres[y] + rng.standard_normal((len(y), d)), y


def test_ten_labels_per_class_separate_six_classes_fast() -> None:
    z, y = _clusters(10, seed=1)
    head = PersonalHead()
    t0 = time.perf_counter()
    head.fit(z, y)
    assert time.perf_counter() - t0 < 1.0  # about 20-60 ms; generous for a busy machine
    zt, yt = _clusters(200, seed=2)
    assert (head.predict(zt) == yt).mean() > 0.95
    # and it can fail: shuffled labels teach nothing
    rand = PersonalHead().fit(z, np.random.default_rng(0).permutation(y))
    assert (rand.predict(zt) == yt).mean() < 0.5


def test_matches_the_standardized_sklearn_probe() -> None:
    z, y = _clusters(10, seed=3)
    zt, _ = _clusters(20, seed=4)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5)).fit(z, y)
    head = PersonalHead(c=0.5).fit(z, y)
    np.testing.assert_allclose(_proba(head, zt), ref.predict_proba(zt), atol=1e-6)
    np.testing.assert_array_equal(head.predict(zt), ref.predict(zt))


def test_labels_come_back_as_given_and_two_classes_work() -> None:
    z, y = _clusters(15, seed=5, k=2, d=8, sep=1.5)
    labels = np.array([7, 42])[y]
    head = PersonalHead().fit(z, labels)
    assert head.classes_ is not None and head.classes_.tolist() == [7, 42]
    assert set(head.predict(z)) <= {7, 42} and (head.predict(z) == labels).mean() > 0.9
    ref = make_pipeline(StandardScaler(), LogisticRegression()).fit(z, labels)
    np.testing.assert_allclose(_proba(head, z), ref.predict_proba(z), atol=1e-6)
    p = _proba(head, z[0])
    assert p.shape == (1, 2) and np.isclose(p.sum(), 1.0)


def test_scale_of_a_dimension_does_not_matter() -> None:
    z, y = _clusters(10, seed=6)
    zt, yt = _clusters(100, seed=7)
    scale = np.ones(z.shape[1])
    scale[:5] = 1e4  # a few huge, uninformative-looking dimensions
    scale[-1] = 0.0  # and a dead one
    acc = (PersonalHead().fit(z * scale, y).predict(zt * scale) == yt).mean()
    assert acc > 0.9


def test_bad_input_is_refused() -> None:
    z, y = _clusters(5, seed=8, d=4)
    with pytest.raises(HeadError, match="not fitted"):
        PersonalHead().predict(z)
    bad = z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(HeadError, match="NaN or Inf"):
        PersonalHead().fit(bad, y)
    with pytest.raises(HeadError, match="at least two classes"):
        PersonalHead().fit(z, np.zeros(len(z), dtype=int))
    with pytest.raises(HeadError, match="expected 30 labels"):
        PersonalHead().fit(z, y[:-1])
    with pytest.raises(HeadError, match="integers"):
        PersonalHead().fit(z, y.astype(float))
    with pytest.raises(HeadError, match=r"shape \(2, 3, 4\)"):
        PersonalHead().fit(z.reshape(-1, 3, 4)[:2], y[:2])
    head = PersonalHead().fit(z, y)
    with pytest.raises(HeadError, match="width 4, got 5"):
        head.predict(np.zeros((2, 5)))
    with pytest.raises(HeadError, match="NaN or Inf"):
        _proba(head, bad)
    with pytest.raises(HeadError, match="positive"):
        PersonalHead(c=0.0)
