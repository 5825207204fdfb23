"""RunConfig: defaults are valid, bad values are refused before round 1, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from common.config import ConfigError, RunConfig
from common.config_checks import check_names, check_secagg_cohort

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_validate_and_round_trip() -> None:
    cfg = RunConfig()
    cfg.validate()
    assert RunConfig.from_flat(cfg.to_flat()) == cfg


def test_flower_app_config_matches_runconfig() -> None:
    """`flwr run .` reads [tool.flwr.app.config]; it must hold exactly the RunConfig keys."""
    app_cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    assert set(app_cfg) == set(RunConfig().to_flat())
    assert RunConfig.from_flat(app_cfg) == RunConfig()


@pytest.mark.parametrize(
    ("flat", "key"),
    [
        ({"num-server-rounds": 0}, "num-server-rounds"),
        ({"num-server-rounds": -3}, "num-server-rounds"),
        ({"local-epochs": 0}, "local-epochs"),
        ({"batch-size": 0}, "batch-size"),
        ({"learning-rate": -1.0}, "learning-rate"),
        ({"fraction-train": 1.5}, "fraction-train"),
        ({"num-shares": 2}, "num-shares"),
        ({"num-shares": 5, "reconstruction-threshold": 5}, "reconstruction-threshold"),
        ({"secagg-timeout": 0.0}, "secagg-timeout"),
        ({"modulus-range": 1000}, "modulus-range"),
        ({"num-server-rounds": "ten"}, "num-server-rounds"),
        ({"secure-aggregation": "maybe"}, "secure-aggregation"),
        ({"no-such-key": 1}, "no-such-key"),
        ({"lr-schedule": "linear"}, "lr-schedule"),
        ({"device": "gpu"}, "device"),
        ({"clipping-range": "inf"}, "clipping-range"),
        ({"num-server-rounds": True}, "num-server-rounds"),
        ({"num-shares": 11, "reconstruction-threshold": 3}, "majority"),
    ],
)
def test_bad_values_name_the_key(flat: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        RunConfig.from_flat(flat)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"method": "mocov9"}, "method"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"partition": "zipf"}, "partition"),
    ],
)
def test_unknown_names_are_refused(change: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        check_names(RunConfig(**change))
    check_names(RunConfig(partition="dirichlet:0.5", dataset="npz:/x.npz"))


def test_strings_from_a_cli_are_coerced() -> None:
    cfg = RunConfig.from_flat({"num-server-rounds": "7", "secure-aggregation": "false"})
    assert cfg.num_server_rounds == 7 and cfg.secure_aggregation is False


def test_too_many_clients_for_an_explicit_modulus_is_refused() -> None:
    # Each client's value can reach the top level q itself, so n * q must stay < modulus:
    # 1024 clients at their top level would sum to exactly 2^32 and wrap to 0.
    cfg = RunConfig(quantization_range=2**22, modulus_range=2**32)
    check_secagg_cohort(cfg, 1023)
    with pytest.raises(ConfigError, match="wrap") as err:
        check_secagg_cohort(cfg, 1024)
    assert err.value.key == "modulus-range"


def test_a_modulus_beyond_the_servers_int64_sum_is_refused() -> None:
    with pytest.raises(ConfigError, match="64-bit") as err:
        check_secagg_cohort(RunConfig(quantization_range=2**30, num_shares=21), 2**23)
    assert err.value.key == "quantization-range"


def test_secagg_needs_three_clients_and_enough_neighbours() -> None:
    with pytest.raises(ConfigError, match="at least 3"):
        check_secagg_cohort(RunConfig(), 2)
    with pytest.raises(ConfigError, match="num-shares"):
        check_secagg_cohort(RunConfig(num_shares=7), 5)
    check_secagg_cohort(RunConfig(secure_aggregation=False), 1)


def test_warmup_ramps_the_first_rounds_then_the_schedule_takes_over() -> None:
    cfg = RunConfig(learning_rate=3e-3, num_server_rounds=5, lr_warmup_rounds=2)
    rates = [cfg.round_learning_rate(r) for r in range(1, 6)]
    assert rates == pytest.approx([1e-3, 2e-3, 3e-3, 3e-3, 3e-3])  # 1/3, 2/3, then all
    cosine = cfg.replace(lr_schedule="cosine")
    # Round 3 of 5 is halfway along the cosine: 0.1 + 0.9 * 0.5 * (1 + cos(pi / 2)) = 0.55.
    assert cosine.round_learning_rate(3) == pytest.approx(0.55 * 3e-3)
    assert cosine.round_learning_rate(1) == pytest.approx(1e-3)


def test_cosine_schedule_decays_to_the_floor_and_constant_does_not() -> None:
    cfg = RunConfig(learning_rate=1e-3, num_server_rounds=11, lr_schedule="cosine")
    rates = [cfg.round_learning_rate(r) for r in range(1, 12)]
    assert rates[0] == 1e-3 and abs(rates[-1] - 1e-4) < 1e-12
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    const = cfg.replace(lr_schedule="constant")
    assert {const.round_learning_rate(r) for r in range(1, 12)} == {1e-3}


@pytest.mark.parametrize(
    ("flat", "key"),
    [
        ({"dp-noise-multiplier": -0.5, "dp-clipping-norm": 1.0}, "dp-noise-multiplier"),
        ({"dp-noise-multiplier": 1.0}, "dp-clipping-norm"),  # noise without a clipping norm
        ({"dp-clipping-norm": -1.0}, "dp-clipping-norm"),
        ({"dp-noise-multiplier": 1.0, "dp-clipping-norm": 1.0, "dp-delta": 0.0}, "dp-delta"),
        ({"dp-noise-multiplier": 1.0, "dp-clipping-norm": 1.0, "dp-delta": 1.0}, "dp-delta"),
        # Under SecAgg+ a clipped delta must fit the elementwise clipping range.
        ({"dp-noise-multiplier": 1.0, "dp-clipping-norm": 9.0}, "dp-clipping-norm"),
        ({"dp-clipping-norm": 2.0, "clipping-range": 1.0}, "dp-clipping-norm"),
        ({"dp-noise-multiplier": "a lot", "dp-clipping-norm": 1.0}, "dp-noise-multiplier"),
    ],
)
def test_bad_dp_values_name_the_key(flat: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        RunConfig.from_flat(flat)


def test_dp_settings_that_are_accepted() -> None:
    assert not RunConfig().dp_clipping and not RunConfig().dp_noise  # off by default
    on = RunConfig.from_flat({"dp-noise-multiplier": "0.5", "dp-clipping-norm": "8"})
    assert on.dp_noise and on.dp_clipping and on.dp_delta == 1e-5
    clip_only = RunConfig.from_flat({"dp-clipping-norm": 1.0})  # clipping's cost alone
    assert clip_only.dp_clipping and not clip_only.dp_noise
    # Without SecAgg+ there is no elementwise range to fit.
    plain = {"dp-noise-multiplier": 1.0, "dp-clipping-norm": 20.0, "secure-aggregation": False}
    assert RunConfig.from_flat(plain).dp_clipping_norm == 20.0
