"""Checked files: the blob back as written, or a clear refusal; never wrong bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.checked_file import DamagedFileError, read_checked, write_checked

MAGIC = b"TEST-1\n"


def test_round_trip_missing_and_damaged(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    assert read_checked(path, MAGIC) is None
    write_checked(path, MAGIC, b"payload" * 100)
    assert read_checked(path, MAGIC) == b"payload" * 100
    data = path.read_bytes()
    for damaged in (data[:-1], data[:-5] + b"xxxxx", b"OTHER-1\n" + data[len(MAGIC) :]):
        path.write_bytes(damaged)
        with pytest.raises(DamagedFileError, match="damaged"):
            read_checked(path, MAGIC)
