"""A stopped benchmark's finished arms: kept, read back on resume, never mixed with
another benchmark's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.config import ConfigError, RunConfig
from simulations.benchmark.parts import Parts, finished_run_seconds, merge, stopped_run

PLAN = {"pretrain_seeds": [0, 1], "fractions": [0.01], "seeds": [0]}


def _part(value: float) -> dict:  # type: ignore[type-arg]
    return {"arms": {"centralized": {"linear": {"accuracy": value}}}}


def test_a_finished_part_is_read_back_not_recomputed(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="digits")
    first = Parts(tmp_path / "b", cfg, PLAN, resume=False)
    made = first.run("seed-0/centralized", lambda: _part(0.9))
    assert made["arms"]["centralized"]["linear"]["accuracy"] == 0.9
    assert made["seconds"]["centralized"] >= 0  # the time it took, recorded with it

    again = Parts(tmp_path / "b", cfg, PLAN, resume=True)
    calls: list[str] = []

    def recompute() -> dict:  # type: ignore[type-arg]
        calls.append("ran")
        return _part(0.1)

    read = again.run("seed-0/centralized", recompute)
    assert calls == [] and read == json.loads(json.dumps(made))
    # a part that was never finished is produced on resume
    assert again.run("seed-1/centralized", lambda: _part(0.8))["arms"]["centralized"]


def test_a_torn_part_is_computed_again(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="digits")
    Parts(tmp_path, cfg, PLAN, resume=False).run("supervised", lambda: _part(0.5))
    (tmp_path / "parts" / "supervised.json").write_text('{"arms": {"super')
    parts = Parts(tmp_path, cfg, PLAN, resume=True)
    assert parts.run("supervised", lambda: _part(0.6))["arms"]["centralized"]["linear"] == {
        "accuracy": 0.6
    }


def test_resume_refuses_a_different_benchmark_naming_what_changed(tmp_path: Path) -> None:
    Parts(tmp_path, RunConfig(dataset="digits"), PLAN, resume=False)
    with pytest.raises(ConfigError, match=r"local-epochs: 10 -> 3"):
        Parts(tmp_path, RunConfig(dataset="digits", local_epochs=3), PLAN, resume=True)
    with pytest.raises(ConfigError, match=r"plan seeds: \[0\] -> \[0, 1\]"):
        Parts(tmp_path, RunConfig(dataset="digits"), {**PLAN, "seeds": [0, 1]}, resume=True)
    # where the arms write is not what they measure
    Parts(tmp_path, RunConfig(dataset="digits", out_dir="/elsewhere"), PLAN, resume=True)


def test_a_used_folder_is_refused_without_resume(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty; --resume"):
        Parts(tmp_path, RunConfig(dataset="digits"), PLAN, resume=False)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match="finished benchmark"):
        Parts(tmp_path, RunConfig(dataset="digits"), PLAN, resume=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_merge_adds_a_part_beside_what_is_there() -> None:
    run = {"arms": {"federated": 1}, "seconds": {"federated": 2.0}}
    merge(run, {"arms": {"centralized": 3}, "seconds": {"centralized": 4.0}, "curves": {"c": []}})
    assert run == {
        "arms": {"federated": 1, "centralized": 3},
        "seconds": {"federated": 2.0, "centralized": 4.0},
        "curves": {"c": []},
    }


def test_a_finished_federated_run_is_kept_only_for_the_same_config(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="digits", out_dir=str(tmp_path))
    saved = cfg.to_flat()
    del saved["lr-warmup-rounds"]  # an older run's config, before this key existed
    config = tmp_path / "run-config.json"  # what the benchmark started the run with
    config.write_text(json.dumps(saved))
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "seconds": 5}))
    (tmp_path / "encoder.pt").write_bytes(b"x")
    assert finished_run_seconds(tmp_path, config, cfg) == 5.0
    assert finished_run_seconds(tmp_path, config, cfg.replace(lr_warmup_rounds=1)) is None
    assert finished_run_seconds(tmp_path, config, cfg.replace(seed=1)) is None
    (tmp_path / "summary.json").write_text(json.dumps({"status": "failed"}))
    assert finished_run_seconds(tmp_path, config, cfg) is None


def test_a_stopped_federated_run_is_resumed_only_for_the_same_config(tmp_path: Path) -> None:
    cfg = RunConfig(dataset="digits", out_dir=str(tmp_path))
    config = tmp_path / "run-config.json"
    config.write_text(json.dumps(cfg.to_flat()))
    assert not stopped_run(tmp_path, config, cfg)  # nothing recorded yet: run it again
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_flat()))  # the run's own record
    (tmp_path / "metrics.jsonl").write_text('{"round": 1, "completed": true}\n')
    assert stopped_run(tmp_path, config, cfg)
    assert stopped_run(tmp_path, config, cfg.replace(out_dir="/moved"))  # where, not what
    assert not stopped_run(tmp_path, config, cfg.replace(seed=1))
    config.write_text("{not json")
    assert not stopped_run(tmp_path, config, cfg)
    config.write_text(json.dumps(cfg.to_flat()))
    (tmp_path / "summary.json").write_text(json.dumps({"status": "failed"}))
    assert not stopped_run(tmp_path, config, cfg)  # it ended: not a stopped run
