"""Every Python package in the source tree is listed for a (non-editable) install."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_installed() -> None:
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("common", "client", "server", "simulations")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found - listed == set(), (
        f"missing from [tool.setuptools] packages: {sorted(found - listed)}"
    )
