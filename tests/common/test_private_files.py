"""Private files: 0600 from the first byte, folders 0700, older trees tightened."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.private_files import open_private, private_tree, write_secret


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _restore_umask() -> object:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_secret_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    os.umask(0)
    path = write_secret(tmp_path / "token", "abc")
    assert _mode(path) == 0o600 and path.read_text() == "abc"
    write_secret(path, b"new")  # replaced, still private
    assert _mode(path) == 0o600 and path.read_bytes() == b"new"
    with open_private(tmp_path / "data.bin") as fh:
        fh.write(b"x")
    assert _mode(tmp_path / "data.bin") == 0o600


def test_private_tree_tightens_an_old_tree_and_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "state"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "a.log").write_text("x")
    os.chmod(root, 0o755)
    os.chmod(root / "logs", 0o775)
    os.chmod(root / "logs" / "a.log", 0o664)
    os.symlink("/etc/hostname", root / "link")  # links are left alone, never followed
    before = _mode(Path("/etc/hostname"))
    private_tree(root)
    assert _mode(root) == 0o700 and _mode(root / "logs") == 0o700
    assert _mode(root / "logs" / "a.log") == 0o600
    assert _mode(Path("/etc/hostname")) == before
    (root / "new.json").write_text("{}")  # the umask now keeps new files private
    (root / "newdir").mkdir()
    assert _mode(root / "new.json") == 0o600 and _mode(root / "newdir") == 0o700
