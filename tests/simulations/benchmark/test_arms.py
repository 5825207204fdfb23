"""Which round checkpoints the benchmark's federated curve probes."""

from __future__ import annotations

import pytest

from simulations.benchmark.arms import thin_rounds


@pytest.mark.parametrize(
    ("rounds", "points", "kept"),
    [
        (6, 0, [0, 1, 2, 3, 4, 5, 6]),  # 0: every round
        (6, 20, [0, 1, 2, 3, 4, 5, 6]),  # fewer rounds than points: every round
        (60, 20, [0] + list(range(3, 61, 3))),  # every third round, 20 probes
        (61, 20, [0] + list(range(4, 61, 4)) + [61]),  # the last round always
        (7, 2, [0, 4, 7]),
        (5, 1, [0, 5]),
    ],
)
def test_thin_rounds_keeps_round_0_the_last_and_at_most_points(
    rounds: int, points: int, kept: list[int]
) -> None:
    assert thin_rounds(list(range(rounds + 1)), points) == kept


def test_thin_rounds_over_many_budgets() -> None:
    for rounds in range(1, 130):
        for points in range(1, 25):
            got = thin_rounds(list(range(rounds + 1)), points)
            assert got[0] == 0 and got[-1] == rounds
            assert all(a < b for a, b in zip(got, got[1:], strict=False))
            assert len(got) - 1 == min(rounds, points) or len(got) - 1 < points
            assert len(got) - 1 >= min(rounds, points) // 2  # not far fewer than asked
