"""Linear bandits learn a linear contextual problem and their fast updates are exact."""

from __future__ import annotations

import numpy as np
import pytest

from client.runtime.bandit import BanditError, LinearThompson, LinUCB, Policy, RandomPolicy

D, A = 16, 6


def _regret(policy: Policy, steps: int = 2000, seed: int = 0, noise: float = 0.1) -> float:
    """Cumulative expected regret on rewards x . theta_a + noise, x ~ N(0, I)."""
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((A, D)) / np.sqrt(D)
    total = 0.0
    for _ in range(steps):
        x = rng.standard_normal(D)
        mean = theta @ x
        a = policy.choose(x)
        policy.update(x, a, mean[a] + noise * rng.standard_normal())
        total += mean.max() - mean[a]
    return total


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "make",
    [lambda s: LinUCB(A, D), lambda s: LinearThompson(A, D, seed=s)],
    ids=["linucb", "thompson"],
)
def test_regret_grows_far_slower_than_random(make: object, seed: int) -> None:
    random = _regret(RandomPolicy(A, seed=seed), seed=seed)
    learned = _regret(make(seed), seed=seed)  # type: ignore[operator]
    assert learned < 0.3 * random, (learned, random)
    # and it keeps learning: the second 1000 steps cost less than the first
    first = _regret(make(seed), steps=1000, seed=seed)  # type: ignore[operator]
    assert learned - first < first


def test_supervised_to_bandit_conversion_is_learned() -> None:
    """Reward 1 when the action is the true class (docs/architecture.md, "The device loop"): the policy learns to classify."""
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((A, D)) * 2
    policy = LinUCB(A, D, alpha=0.5)
    hits = []
    for _ in range(1500):
        y = int(rng.integers(A))
        x = centres[y] + rng.standard_normal(D)
        a = policy.choose(x)
        policy.update(x, a, float(a == y))
        hits.append(a == y)
    assert np.mean(hits[-300:]) > 0.85


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_rank_one_updates_equal_a_direct_solve(cls: type) -> None:
    rng = np.random.default_rng(0)
    policy = cls(3, 5, refresh_every=0)
    contexts = rng.standard_normal((400, 5)) * 3
    for i, x in enumerate(contexts):
        # half the updates follow a choose (cached A^-1 x), half come without one
        a = policy.choose(x) if i % 2 else int(rng.integers(3))
        policy.update(x, a, float(rng.standard_normal()))
    xs = np.hstack([contexts, np.ones((400, 1))])  # the intercept column
    for a in range(3):
        np.testing.assert_allclose(policy.a_inv[a], np.linalg.inv(policy.gram[a]), atol=1e-10)
        np.testing.assert_allclose(
            policy.theta[a], np.linalg.solve(policy.gram[a], policy.b[a]), atol=1e-10
        )
    assert np.allclose(policy.gram.sum(axis=0), np.eye(6) * 3 + xs.T @ xs)


def test_periodic_refresh_changes_nothing_but_rounding() -> None:
    rng = np.random.default_rng(1)
    exact, lazy = LinUCB(2, 4, refresh_every=7), LinUCB(2, 4, refresh_every=0)
    for _ in range(100):
        x = rng.standard_normal(4)
        assert exact.choose(x) == lazy.choose(x)
        a, r = int(rng.integers(2)), float(rng.standard_normal())
        exact.update(x, a, r)
        lazy.update(x, a, r)
    np.testing.assert_allclose(exact.theta, lazy.theta, atol=1e-10)


def test_no_intercept_and_ucb_bonus() -> None:
    policy = LinUCB(2, 3, alpha=1.0, fit_intercept=False)
    x = np.array([1.0, 0.0, 0.0])
    for _ in range(5):
        policy.update(x, 0, 0.1)
    # action 0 has a mean near 0.1 but a small bonus; untried action 1 has mean 0, bonus 1
    assert policy.choose(x) == 1
    assert LinUCB(2, 3, alpha=0.0, fit_intercept=False).a_inv.shape == (2, 3, 3)


def test_thompson_is_seeded_and_greedy_without_noise() -> None:
    x = np.ones(D)

    def run(p: LinearThompson) -> list[int]:
        return [p.choose(x) for _ in range(20)]

    assert run(LinearThompson(A, D, seed=4)) == run(LinearThompson(A, D, seed=4))
    assert len(set(run(LinearThompson(A, D, seed=4)))) > 1  # explores while it knows nothing
    greedy = LinearThompson(A, D, v=0.0)
    greedy.update(x, 2, 1.0)
    assert set(run(greedy)) == {2}


@pytest.mark.parametrize("policy", [LinUCB(A, D), LinearThompson(A, D)], ids=["linucb", "ts"])
def test_bad_input_is_refused(policy: Policy) -> None:
    x = np.zeros(D)
    with pytest.raises(BanditError, match=r"shape \(16,\)"):
        policy.choose(np.zeros(D + 1))
    with pytest.raises(BanditError, match="NaN or Inf"):
        policy.choose(np.full(D, np.nan))
    with pytest.raises(BanditError, match=r"action must be an integer in \[0, 6\)"):
        policy.update(x, 6, 1.0)
    with pytest.raises(BanditError, match="action"):
        policy.update(x, 1.5, 1.0)  # type: ignore[arg-type]
    with pytest.raises(BanditError, match="reward must be finite"):
        policy.update(x, 0, float("inf"))
    with pytest.raises(BanditError, match="action"):
        RandomPolicy(A).update(x, -1, 0.0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(BanditError):
        LinUCB(0, D)
    with pytest.raises(BanditError, match="ridge"):
        LinUCB(A, D, ridge=0.0)
    with pytest.raises(BanditError, match="alpha"):
        LinUCB(A, D, alpha=-1.0)
    with pytest.raises(BanditError, match="v must"):
        LinearThompson(A, D, v=float("nan"))
    with pytest.raises(BanditError):
        RandomPolicy(0)
