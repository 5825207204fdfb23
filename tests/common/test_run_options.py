"""One definition per run option: the flags of every run command, their precedence, the
error messages in the user's own terms and the README's table all come from RunConfig."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import pytest

from common.cli import build_parser, main
from common.config import RunConfig, run_option
from common.config_values import ConfigError, config_key
from common.run_options import (
    README_END,
    README_START,
    add_run_options,
    config_from_args,
    in_user_terms,
    options_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
EXCLUDED = {"server": {"partition"}, "benchmark": {"evaluate", "evaluate-every"}}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_run_options(p)
    return p


def _flags_of(command: str) -> set[str]:
    sub = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices[command]
    return {opt for action in sub._actions for opt in action.option_strings}


@pytest.mark.parametrize("command", ["simulate", "server", "benchmark"])
def test_every_flagged_key_is_a_flag_of_every_run_command(command: str) -> None:
    flags = _flags_of(command)
    for f in fields(RunConfig):
        meta = run_option(f)
        if meta.flag and config_key(f.name) not in EXCLUDED.get(command, set()):
            assert meta.flag in flags, (command, meta.flag)
    for key in EXCLUDED.get(command, set()):
        flag = next(run_option(f).flag for f in fields(RunConfig) if config_key(f.name) == key)
        assert flag not in flags


def test_every_key_has_help_and_only_internal_keys_lack_a_way_in() -> None:
    for f in fields(RunConfig):
        meta = run_option(f)
        assert meta.help, f.name
        assert not (meta.internal and meta.flag), f.name


def test_precedence_defaults_command_file_flags_set(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"local-epochs": 5, "batch-size": 16, "seed": 4}))
    args = _parser().parse_args(["--batch-size", "32", "--seed", "5"])
    cfg = config_from_args(
        args,
        {"num-server-rounds": 4, "local-epochs": 1},  # e.g. benchmark --quick
        config_file=str(config),
        set_items=["seed=6"],
    )
    assert cfg.num_server_rounds == 4  # the command's default
    assert cfg.local_epochs == 5  # the file beats the command's default
    assert cfg.batch_size == 32  # a flag beats the file
    assert cfg.seed == 6  # --set beats everything
    assert cfg.learning_rate == RunConfig().learning_rate  # untouched: the default


def test_unset_flags_leave_no_value_and_no_flags_mean_off() -> None:
    assert config_from_args(_parser().parse_args([])) == RunConfig()
    cfg = config_from_args(_parser().parse_args(["--no-secure-aggregation", "--no-evaluate"]))
    assert cfg.secure_aggregation is False and cfg.evaluate is False


def test_errors_name_the_flag_typed_or_the_key_set() -> None:
    args = _parser().parse_args(["--rounds", "-1"])
    with pytest.raises(ConfigError) as info:
        config_from_args(args)
    assert in_user_terms(info.value, args) == "--rounds must be > 0, got -1"
    args = _parser().parse_args([])
    with pytest.raises(ConfigError) as info:
        config_from_args(args, set_items=["num-server-rounds=-1"])
    assert in_user_terms(info.value, args) == "num-server-rounds must be > 0, got -1"


def test_cli_reports_the_flag_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--dataset", "digits", "--rounds", "-1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "fedssl simulate: error: --rounds must be > 0, got -1"
    )
    assert main(["simulate", "--dataset", "digits", "--lr-schedule", "cosine", "--set", "x=1"]) == 2
    assert "unknown config key 'x'" in capsys.readouterr().err


def test_a_bad_config_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["simulate", "--config", str(bad)]) == 2
    assert f"--config {bad}" in capsys.readouterr().err


def test_readme_holds_the_generated_table() -> None:
    text = (ROOT / "README.md").read_text()
    block = text[text.index(README_START) + len(README_START) : text.index(README_END)]
    assert block.strip() == options_markdown().strip(), (
        "README's run-options table is stale: paste `python -m common.run_options`"
    )
