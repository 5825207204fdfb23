"""The Flower app directory that ``fedssl server`` submits as a FAB.

Flower ships the code of a run to the SuperLink and every SuperNode as a bundle
built from a project folder. An installed fedssl (a wheel) has no project folder,
so one is assembled here from the installed packages: a generated ``pyproject.toml``
naming the ServerApp and ClientApp, and the ``common``, ``server`` and ``client``
sources. Devices still need fedssl's dependencies installed: runtime dependency
installation stays off.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

from common.config import RunConfig

PACKAGES = ("common", "server", "client")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def pyproject_text(version: str = "0.1.0") -> str:
    config = "\n".join(f"{k} = {_toml_value(v)}" for k, v in RunConfig().to_flat().items())
    return f"""[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "fedssl"
version = "{version}"
dependencies = []

[tool.flwr.app]
publisher = "fedssl"

[tool.flwr.app.components]
serverapp = "server.server_app:app"
clientapp = "client.client_app:app"

[tool.flwr.app.config]
{config}
"""


def build_app_dir(dest: str | Path) -> Path:
    """Write the app folder to ``dest`` (replaced if present) and return it."""
    root = Path(dest)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name in PACKAGES:
        src = Path(importlib.import_module(name).__file__ or "").parent
        for path in sorted(src.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            target = root / name / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    (root / "pyproject.toml").write_text(pyproject_text())
    return root
