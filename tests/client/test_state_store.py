"""Node-local client state: one checksummed file per run; damage gives None and a warning."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from client.state_store import MAGIC, load_state, save_state, state_file

BLOB = bytes(range(256)) * 40  # not all-zero, so flips change it


@pytest.fixture(autouse=True)
def _propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    # common.logs.setup_logging (run by other tests) stops propagation to the root logger,
    # where caplog listens.
    monkeypatch.setattr(logging.getLogger("fedssl"), "propagate", True)


def test_state_file_is_per_run_and_stable(tmp_path: Path) -> None:
    a = state_file(tmp_path, "/srv/runs/run-1")
    assert a == state_file(tmp_path, "/srv/runs/run-1")
    assert a != state_file(tmp_path, "/srv/runs/run-2")
    assert a.parent == tmp_path
    assert a.name.startswith("client-state-") and a.suffix == ".bin"
    assert "/" not in a.name[len("client-state-") :]  # the run key never becomes a path


def test_state_file_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_file("~/state", "k").parent == tmp_path / "state"


def test_round_trip(tmp_path: Path) -> None:
    path = state_file(tmp_path / "new" / "dir", "run")  # parent folders are made
    save_state(path, BLOB)
    assert load_state(path) == BLOB
    assert path.read_bytes().startswith(MAGIC)


def test_empty_blob_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "s.bin"
    save_state(path, b"")
    assert load_state(path) == b""


def test_save_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "s.bin"
    save_state(path, b"first round")
    save_state(path, BLOB)
    assert load_state(path) == BLOB
    assert [p.name for p in tmp_path.iterdir()] == ["s.bin"]


def test_missing_file_is_none_without_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fedssl.client"):
        assert load_state(tmp_path / "absent.bin") is None
    assert not caplog.records


def _corrupt_cases(data: bytes) -> dict[str, bytes]:
    def flip(i: int) -> bytes:
        b = bytearray(data)
        b[i] ^= 0x01
        return bytes(b)

    n = len(MAGIC)
    return {
        "flip-in-blob": flip(len(data) // 2),
        "flip-last-byte": flip(len(data) - 1),
        "flip-in-digest": flip(n + 5),
        "flip-in-magic": flip(0),
        "truncated": data[: len(data) - 100],
        "cut-in-digest": data[: n + 10],
        "magic-only": data[:n],
        "empty": b"",
        "appended": data + b"\x00",
    }


@pytest.mark.parametrize("case", list(_corrupt_cases(b"x" * 200)))
def test_damaged_file_gives_none_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    path = tmp_path / "s.bin"
    save_state(path, BLOB)
    path.write_bytes(_corrupt_cases(path.read_bytes())[case])
    with caplog.at_level(logging.WARNING, logger="fedssl.client"):
        assert load_state(path) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(path) in warnings[0].getMessage()


def test_a_file_of_another_format_is_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "s.bin"
    path.write_bytes(os.urandom(200))
    assert load_state(path) is None
