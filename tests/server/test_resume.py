"""Resuming a run from its folder: after the last recorded round, from the newest
checkpoint that verifies; damaged checkpoints and torn metric lines are survived."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from common.config import ConfigError, RunConfig
from common.local_round import encoder_from_arrays, initial_global_arrays
from common.serialize import save_encoder
from server.outputs import RunOutputs, read_rows
from server.resume import MUTABLE_KEYS, check_same_run, find_resume_point
from server.round_outcome import RoundOutcome

SHAPE = (1, 8, 8)


@pytest.fixture(autouse=True)
def _propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    # common.logs.setup_logging (run by other tests) stops propagation to caplog's handler.
    monkeypatch.setattr(logging.getLogger("fedssl"), "propagate", True)


@pytest.fixture(scope="module")
def cfg() -> RunConfig:
    return RunConfig(dataset="digits", num_server_rounds=5, secure_aggregation=False)


@pytest.fixture(scope="module")
def init(cfg: RunConfig) -> list[np.ndarray]:
    return initial_global_arrays(cfg, SHAPE)


def _arrays_of_round(init: list[np.ndarray], r: int) -> list[np.ndarray]:
    return [a + np.float32(0.01 * r) for a in init]


def _save(cfg: RunConfig, path: Path, arrays: list[np.ndarray], server_round: int) -> None:
    """As server/run.py saves a round checkpoint."""
    enc, arch, hparams = encoder_from_arrays(cfg, SHAPE, arrays)
    meta = {"round": server_round, "method": cfg.method, "dataset": cfg.dataset}
    shared = {f"{i:04d}": torch.from_numpy(a) for i, a in enumerate(arrays)}
    save_encoder(path, enc, arch, hparams, meta, extra_state=shared)


def _outcome(r: int, completed: bool = True) -> RoundOutcome:
    return RoundOutcome(
        round=r,
        clients_sampled=3,
        clients_aggregated=3 if completed else 0,
        completed=completed,
        reason="" if completed else "too few results",
        train_loss=1.0 / r if completed else None,
    )


def _make_run(
    cfg: RunConfig, init: list[np.ndarray], folder: Path, rounds: list[bool]
) -> RunOutputs:
    """A killed run: config, checkpoint 0, then per round (completed or not) what
    server/run.py's on_round_end writes: the checkpoint of a completed round, then its row."""
    out = RunOutputs(folder)
    out.write_json(
        "config.json", {**cfg.replace(out_dir=str(out.dir)).to_flat(), "resolved-clients": 3}
    )
    _save(cfg, out.checkpoint_path(0), init, 0)
    for r, ok in enumerate(rounds, start=1):
        if ok:
            _save(cfg, out.checkpoint_path(r), _arrays_of_round(init, r), r)
        out.append_round(_outcome(r, ok), secure_aggregation=False, seconds=0.1)
    return out


def _assert_arrays(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def _metric_rounds(folder: Path) -> list[int]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["round"] for line in lines]


# ---- RunOutputs: new folder, reopened folder -----------------------------------------


def test_new_run_folder_layout(tmp_path: Path) -> None:
    out = RunOutputs(tmp_path / "run")
    assert (out.dir / "checkpoints").is_dir()
    assert out.metrics_path.read_text() == ""
    assert out.rows == []
    assert out.checkpoint_path(7) == out.dir / "checkpoints" / "round-0007.pt"


def test_new_run_refuses_a_folder_holding_a_run(tmp_path: Path) -> None:
    RunOutputs(tmp_path / "run").write_json("config.json", {"a": 1})
    with pytest.raises(ConfigError, match="already holds a run"):
        RunOutputs(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"a": 1}


def test_resume_needs_a_config(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(ConfigError, match="config.json"):
        RunOutputs(tmp_path / "run", resume=True)


def test_resume_refuses_a_finished_run(tmp_path: Path) -> None:
    out = RunOutputs(tmp_path / "run")
    out.write_json("config.json", {})
    out.write_json("summary.json", {"status": "completed"})
    with pytest.raises(ConfigError, match="already finished"):
        RunOutputs(tmp_path / "run", resume=True)


def test_reopen_reads_rows_and_config(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray]
) -> None:
    written = _make_run(cfg, init, tmp_path / "run", [True, True])
    out = RunOutputs(tmp_path / "run", resume=True)
    assert out.rows == written.rows
    assert [r["round"] for r in out.rows] == [1, 2]
    assert out.read_json("config.json")["method"] == cfg.method
    assert out.read_json("config.json")["resolved-clients"] == 3


def test_truncate_rewrites_metrics(tmp_path: Path) -> None:
    out = RunOutputs(tmp_path / "run")
    for r in (1, 2, 3):
        out.append_round(_outcome(r), secure_aggregation=False, value=np.float32(0.5))
    out.truncate(1)
    assert [r["round"] for r in out.rows] == [1]
    assert _metric_rounds(out.dir) == [1]
    assert json.loads(out.metrics_path.read_text())["value"] == 0.5
    out.write_json("config.json", {})
    assert [r["round"] for r in RunOutputs(out.dir, resume=True).rows] == [1]


# ---- find_resume_point ----------------------------------------------------------------


def test_resume_after_the_last_round(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray]
) -> None:
    _make_run(cfg, init, tmp_path / "run", [True, True, True])
    out = RunOutputs(tmp_path / "run", resume=True)
    point = find_resume_point(out)
    assert point.next_round == 4 and point.checkpoint_round == 3
    _assert_arrays(point.arrays, _arrays_of_round(init, 3))
    assert _metric_rounds(out.dir) == [1, 2, 3]  # nothing forgotten


def test_resume_before_any_round_starts_from_the_initial_state(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray]
) -> None:
    _make_run(cfg, init, tmp_path / "run", [])
    point = find_resume_point(RunOutputs(tmp_path / "run", resume=True))
    assert point.next_round == 1 and point.checkpoint_round == 0
    _assert_arrays(point.arrays, init)


def test_failed_last_round_is_not_redone(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray]
) -> None:
    # A failed round leaves the global state as it was: resume after it, from round 2's state.
    _make_run(cfg, init, tmp_path / "run", [True, True, False])
    point = find_resume_point(RunOutputs(tmp_path / "run", resume=True))
    assert point.next_round == 4 and point.checkpoint_round == 2
    _assert_arrays(point.arrays, _arrays_of_round(init, 2))


def test_checkpoint_without_its_row_is_not_trusted(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray]
) -> None:
    # Killed between writing round 3's checkpoint and its metrics row: round 3 is redone.
    out = _make_run(cfg, init, tmp_path / "run", [True, True])
    _save(cfg, out.checkpoint_path(3), _arrays_of_round(init, 3), 3)
    point = find_resume_point(RunOutputs(tmp_path / "run", resume=True))
    assert point.next_round == 3 and point.checkpoint_round == 2
    _assert_arrays(point.arrays, _arrays_of_round(init, 2))


@pytest.mark.parametrize(
    "damage", [_flip, _truncate, Path.unlink], ids=["flip", "truncate", "delete"]
)
def test_bad_newest_checkpoint_falls_back_to_the_previous_one(
    tmp_path: Path,
    cfg: RunConfig,
    init: list[np.ndarray],
    caplog: pytest.LogCaptureFixture,
    damage: object,
) -> None:
    out = _make_run(cfg, init, tmp_path / "run", [True, True, True])
    damage(out.checkpoint_path(3))  # type: ignore[operator]
    reopened = RunOutputs(tmp_path / "run", resume=True)
    with caplog.at_level(logging.WARNING, logger="fedssl.server"):
        point = find_resume_point(reopened)
    assert point.next_round == 3 and point.checkpoint_round == 2
    _assert_arrays(point.arrays, _arrays_of_round(init, 2))
    # Round 3 is forgotten, in memory and on disk, so that it is recorded once when redone.
    assert [r["round"] for r in reopened.rows] == [1, 2]
    assert _metric_rounds(reopened.dir) == [1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "round 3" in warnings[0] and "round-0003.pt" in warnings[0]


def test_several_bad_checkpoints_fall_back_further(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    out = _make_run(cfg, init, tmp_path / "run", [True, True, False, True])
    _flip(out.checkpoint_path(4))
    _truncate(out.checkpoint_path(2))
    reopened = RunOutputs(tmp_path / "run", resume=True)
    with caplog.at_level(logging.WARNING, logger="fedssl.server"):
        point = find_resume_point(reopened)
    assert point.next_round == 2 and point.checkpoint_round == 1
    _assert_arrays(point.arrays, _arrays_of_round(init, 1))
    assert _metric_rounds(reopened.dir) == [1]
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(skipped) == 2
    assert "round 4" in skipped[0] and "round 2" in skipped[1]


def test_no_readable_checkpoint_is_an_error(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray]
) -> None:
    out = _make_run(cfg, init, tmp_path / "run", [True])
    _flip(out.checkpoint_path(1))
    _truncate(out.checkpoint_path(0))
    with pytest.raises(ConfigError, match="no readable checkpoint"):
        find_resume_point(RunOutputs(tmp_path / "run", resume=True))


def test_a_final_encoder_file_is_not_a_round_checkpoint(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    # A file with the encoder only (no shared state) cannot restart the run.
    out = _make_run(cfg, init, tmp_path / "run", [True])
    enc, arch, hparams = encoder_from_arrays(cfg, SHAPE, init)
    save_encoder(out.checkpoint_path(1), enc, arch, hparams, {"round": 1})
    with caplog.at_level(logging.WARNING, logger="fedssl.server"):
        point = find_resume_point(RunOutputs(tmp_path / "run", resume=True))
    assert point.checkpoint_round == 0 and point.next_round == 1
    assert any("round 1" in r.getMessage() for r in caplog.records)


def test_torn_last_metrics_line_is_ignored(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray]
) -> None:
    out = _make_run(cfg, init, tmp_path / "run", [True, True])
    _save(cfg, out.checkpoint_path(3), _arrays_of_round(init, 3), 3)
    with open(out.metrics_path, "a") as fh:  # killed half-way through round 3's row
        fh.write('{"round": 3, "secure_aggregation": false, "compl')
    torn = out.metrics_path.read_bytes()
    # Read only (a stopped simulation reports its rounds while the run may still write):
    assert [r["round"] for r in read_rows(tmp_path / "run")] == [1, 2]
    assert out.metrics_path.read_bytes() == torn
    reopened = RunOutputs(tmp_path / "run", resume=True)
    assert [r["round"] for r in reopened.rows] == [1, 2]
    point = find_resume_point(reopened)
    assert point.next_round == 3 and point.checkpoint_round == 2
    _assert_arrays(point.arrays, _arrays_of_round(init, 2))


def test_rounds_recorded_after_a_torn_line_survive_the_next_resume(
    tmp_path: Path, cfg: RunConfig, init: list[np.ndarray]
) -> None:
    """After a torn line, the redone round is appended; metrics.jsonl must stay one JSON
    object per line, so that later tools and a second resume read every round."""
    out = _make_run(cfg, init, tmp_path / "run", [True, True])
    with open(out.metrics_path, "a") as fh:
        fh.write('{"round": 3, "secure_aggregation": false, "compl')
    resumed = RunOutputs(tmp_path / "run", resume=True)
    point = find_resume_point(resumed)
    assert point.next_round == 3
    _save(cfg, resumed.checkpoint_path(3), _arrays_of_round(init, 3), 3)
    resumed.append_round(_outcome(3), secure_aggregation=False, seconds=0.1)
    assert [r["round"] for r in resumed.rows] == [1, 2, 3]
    # Killed again: the second resume must see round 3.
    again = RunOutputs(tmp_path / "run", resume=True)
    assert [r["round"] for r in again.rows] == [1, 2, 3]
    assert find_resume_point(again).next_round == 4
    assert _metric_rounds(again.dir) == [1, 2, 3]


# ---- check_same_run -------------------------------------------------------------------


def test_same_config_is_accepted(cfg: RunConfig) -> None:
    check_same_run({**cfg.to_flat(), "resolved-clients": 3}, cfg)


@pytest.mark.parametrize(
    "changes",
    [
        {"num_server_rounds": 50},
        {"max_failed_rounds": 2},
        {"secagg_timeout": 30.0},
        {"out_dir": "/elsewhere"},
        {"resume": True, "out_dir": "/elsewhere"},
    ],
)
def test_mutable_keys_may_change(cfg: RunConfig, changes: dict[str, object]) -> None:
    check_same_run(cfg.to_flat(), cfg.replace(**changes))


def test_the_client_count_may_change_only_where_devices_bring_their_data(
    cfg: RunConfig,
) -> None:
    deployed = cfg.replace(node_data=True)
    check_same_run(deployed.to_flat(), deployed.replace(num_clients=4))  # a device joined
    with pytest.raises(ConfigError, match="num-clients: 0 -> 4"):  # the split would change
        check_same_run(cfg.to_flat(), cfg.replace(num_clients=4))


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"method": "byol"}, "method"),
        ({"learning_rate": 0.01}, "learning-rate"),
        ({"seed": 1}, "seed"),
        ({"secure_aggregation": True}, "secure-aggregation"),
        ({"fed_algorithm": "fedema"}, "fed-algorithm"),
        ({"batch_size": 32}, "batch-size"),
    ],
)
def test_changed_key_is_refused_by_name(
    cfg: RunConfig, changes: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=key) as info:
        check_same_run(cfg.to_flat(), cfg.replace(**changes))
    assert "resume" in str(info.value)
    assert key not in MUTABLE_KEYS


def test_all_changed_keys_are_named(cfg: RunConfig) -> None:
    with pytest.raises(ConfigError) as info:
        check_same_run(cfg.to_flat(), cfg.replace(method="byol", seed=3, num_server_rounds=9))
    msg = str(info.value)
    assert "method: 'simclr' -> 'byol'" in msg and "seed: 0 -> 3" in msg
    assert "num-server-rounds" not in msg


def test_keys_the_saved_run_did_not_have_are_ignored(cfg: RunConfig) -> None:
    saved = cfg.to_flat()
    del saved["temperature"]  # a run saved before the key existed
    check_same_run(saved, cfg.replace(temperature=0.1))
