"""Raw config values to typed ones: what a CLI or TOML may hand over, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from common.config_values import ConfigError, coerce, config_key, parse_set_items


@pytest.mark.parametrize(
    ("raw", "default", "want"),
    [("7", 1, 7), (7.0, 1, 7), ("0.5", 1.0, 0.5), (3, 1.0, 3.0), ("yes", False, True),
     ("OFF", True, False), (0, True, False), (12, "", "12")],
)  # fmt: skip
def test_values_take_the_type_of_the_default(raw: Any, default: Any, want: Any) -> None:
    got = coerce("k", raw, default)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
    ("raw", "default"),
    [("1.5", 1), (1.5, 1), (True, 1), (True, 1.0), ("nan", 1.0), ("inf", 1.0), ("maybe", True)],
)
def test_values_that_do_not_fit_are_refused_naming_the_key(raw: Any, default: Any) -> None:
    with pytest.raises(ConfigError, match="num-server-rounds must be a") as err:
        coerce("num-server-rounds", raw, default)
    assert err.value.key == "num-server-rounds"


def test_set_items_split_at_the_first_equals_sign() -> None:
    assert parse_set_items([" a-b = 1 ", "c=x=y"]) == {"a-b": "1", "c": "x=y"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_items(["novalue"])


def test_field_names_become_kebab_keys() -> None:
    assert config_key("server_learning_rate_final") == "server-learning-rate-final"
