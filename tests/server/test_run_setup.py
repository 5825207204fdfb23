"""Before round 1: the input shape comes from the config when the server has no data."""

from __future__ import annotations

import pytest

from common.config import ConfigError, RunConfig
from common.data.errors import DataError
from server.run_setup import input_shape, secagg_timeout_warning


def test_a_deployment_server_without_data_takes_the_shape_from_the_config() -> None:
    cfg = RunConfig(
        dataset="npz:/nonexistent/no-data-here.npz",
        node_data=True,
        num_clients=3,
        evaluate=False,
        input_shape="6x128",
    )
    assert input_shape(cfg) == (6, 128)  # nothing was loaded: the file does not exist


def test_without_input_shape_or_with_the_probe_the_data_is_needed() -> None:
    missing = "npz:/nonexistent/no-data-here.npz"
    for cfg in (
        RunConfig(dataset=missing, node_data=True, num_clients=3, evaluate=False),
        RunConfig(dataset=missing, node_data=True, num_clients=3, input_shape="6x128"),
    ):
        with pytest.raises(DataError, match="no-data-here"):
            input_shape(cfg)


def test_the_data_sets_shape_wins_over_nothing_and_must_agree_with_a_given_one() -> None:
    assert input_shape(RunConfig(dataset="digits")) == (1, 8, 8)
    assert input_shape(RunConfig(dataset="digits", input_shape="1x8x8")) == (1, 8, 8)
    with pytest.raises(ConfigError, match="input-shape 6x128 does not match digits"):
        input_shape(RunConfig(dataset="digits", input_shape="6x128"))


@pytest.mark.parametrize("bad", ["6,128", "x128", "6x", "abc"])
def test_a_malformed_shape_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="input-shape"):
        RunConfig(input_shape=bad).validate()


def test_a_cohort_too_large_for_the_secagg_timeout_is_warned_about() -> None:
    assert secagg_timeout_warning(RunConfig(), 1000) is None  # 50 s of 300
    warning = secagg_timeout_warning(RunConfig(), 10_000)
    assert warning is not None and "--secagg-timeout 1000" in warning
    assert secagg_timeout_warning(RunConfig(secagg_timeout=1200), 10_000) is None
    assert secagg_timeout_warning(RunConfig(secure_aggregation=False), 10_000) is None
