"""The curves bench's variants and table (known curves, hand-computed figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulations.bench.fed_curves import parse_variant, table


def test_a_variant_is_a_name_and_run_config_keys() -> None:
    assert parse_variant("adam:server-optimizer=fedadam, server-learning-rate=0.01") == (
        "adam",
        {"server-optimizer": "fedadam", "server-learning-rate": "0.01"},
    )
    assert parse_variant("plain:") == ("plain", {})
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_variant("bad:server-optimizer")


def test_the_table_gives_mean_and_standard_error_and_rounds_to_target() -> None:
    def curve(*acc: float) -> list[dict]:  # type: ignore[type-arg]
        return [{"round": r, "linear": a, "seconds": r} for r, a in enumerate(acc)]

    seed0, seed1 = curve(0.9, 0.94, 0.96), curve(0.9, 0.92, 0.94)
    seed0[-1].update(knn=0.93, few_label=0.90)
    seed1[-1].update(knn=0.95, few_label=0.86)
    md = table({"v": {"0": seed0, "1": seed1}})
    row = md.splitlines()[2]
    # finals 0.96 and 0.94: mean 95.0, s.e. = std(ddof=1)/sqrt(2) = 0.01414/1.414 = 1.0
    assert "95.0 ± 1.0 (n=2)" in row
    assert "| 94.0 ± 1.0 | 88.0 ± 2.0 |" in row  # kNN and 1 % labels of the final encoders
    # 93 %: seed 0 at round 1, seed 1 at round 2; 95 %: seed 0 at round 2, seed 1 never
    assert row.endswith("| 1, 2 | 2, - |")


def test_earlier_curves_without_final_figures_still_tabulate() -> None:
    c = [{"round": r, "linear": 0.9, "seconds": r} for r in range(2)]
    assert "| 90.0 (n=1) | - | - |" in table({"old": {"0": c}})


def test_the_curves_figure_is_drawn_from_seeds_of_unequal_length(tmp_path: Path) -> None:
    from simulations.bench.fed_curves import plot

    c = [{"round": r, "linear": 0.9 + r / 100, "seconds": r} for r in range(4)]
    plot({"a": {"0": c, "1": c[:3]}, "b": {"0": c}}, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
