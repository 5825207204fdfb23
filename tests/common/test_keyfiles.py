"""Private key files: owner-only modes are accepted, anything group/other can touch is not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.keyfiles import KeyFileError, check_private_key_file


def _key(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "server.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o200])
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    path = _key(tmp_path, mode)
    assert check_private_key_file(path) == path
    assert check_private_key_file(str(path)) == path  # str paths too


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610, 0o601, 0o602, 0o620, 0o777])
def test_group_or_other_bits_are_refused(tmp_path: Path, mode: int) -> None:
    path = _key(tmp_path, mode)
    with pytest.raises(KeyFileError) as info:
        check_private_key_file(path)
    msg = str(info.value)
    assert str(path) in msg
    assert f"{mode:04o}" in msg  # says which mode it found
    assert f"chmod 600 {path}" in msg  # and how to fix it


def test_refusal_is_a_permission_error(tmp_path: Path) -> None:
    # Callers may catch PermissionError without knowing fedssl's own class.
    with pytest.raises(PermissionError):
        check_private_key_file(_key(tmp_path, 0o644))


def test_missing_file_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(KeyFileError, match="does not exist") as info:
        check_private_key_file(path)
    assert str(path) in str(info.value) and "fedssl certs" in str(info.value)


def test_a_directory_is_not_a_key(tmp_path: Path) -> None:
    folder = tmp_path / "keydir"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyFileError):
        check_private_key_file(folder)


def test_home_relative_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = _key(tmp_path, 0o600)
    assert check_private_key_file("~/server.key") == path
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError):
        check_private_key_file("~/server.key")
