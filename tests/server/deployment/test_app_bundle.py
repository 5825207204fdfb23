"""The app folder that ``fedssl server`` submits: sources + a pyproject Flower accepts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from common.app_signing import APP_SIGNATURE_KEY
from common.config import RunConfig
from server.deployment.app_bundle import PACKAGES, _toml_value, build_app_dir, pyproject_text

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: Flower depends on tomli
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_app_dir(tmp_path_factory.mktemp("bundle") / "app")


def test_folder_holds_the_three_packages_and_no_caches(app_dir: Path) -> None:
    assert sorted(p.name for p in app_dir.iterdir()) == [
        "client",
        "common",
        "pyproject.toml",
        "server",
    ]
    for name in PACKAGES:
        assert (app_dir / name / "__init__.py").is_file()
    for rel in ("server/server_app.py", "client/client_app.py", "common/config.py"):
        assert (app_dir / rel).is_file(), rel
    # Sub-packages come along (common.models etc.), with their sources unchanged.
    src = REPO / "common" / "models"
    for path in src.rglob("*.py"):
        if "__pycache__" not in path.parts:
            copy = app_dir / "common" / "models" / path.relative_to(src)
            assert copy.read_bytes() == path.read_bytes()
    assert not list(app_dir.rglob("__pycache__"))
    assert not list(app_dir.rglob("*.pyc"))
    assert all(p.suffix == ".py" for p in app_dir.rglob("*") if p.is_file() and p.parent != app_dir)


def test_rebuild_replaces_the_folder(tmp_path: Path) -> None:
    dest = tmp_path / "app"
    build_app_dir(dest)
    (dest / "stale.txt").write_text("old")
    (dest / "server" / "old_module.py").write_text("x = 1\n")
    assert build_app_dir(dest) == dest
    assert not (dest / "stale.txt").exists()
    assert not (dest / "server" / "old_module.py").exists()


def _run_config_of(text: str) -> dict[str, object]:
    config = dict(tomllib.loads(text)["tool"]["flwr"]["app"]["config"])
    assert config.pop(APP_SIGNATURE_KEY) == ""  # declared, so that a run may set it
    return config


def test_pyproject_config_equals_run_config_defaults(app_dir: Path) -> None:
    config = _run_config_of((app_dir / "pyproject.toml").read_text())
    expected = RunConfig().to_flat()
    assert config == expected
    for key, value in expected.items():  # True == 1 in Python: compare types too
        assert type(config[key]) is type(value), key
    assert RunConfig.from_flat(config) == RunConfig()


@pytest.mark.parametrize(
    "out_dir",
    [
        "/srv/my runs/run 1",
        '/srv/"quoted"/run',
        "C:\\runs\\new\\t1",
        "/srv/a=b c=d/run",
        "/srv/#hash/run",
        "/srv/bob's runs",
    ],
)
def test_pyproject_carries_the_run_config_verbatim(out_dir: str) -> None:
    """The bundle holds the run's whole config (one signature covers code and config)."""
    cfg = RunConfig(
        dataset="digits", num_clients=4, node_data=True, learning_rate=1e-4, out_dir=out_dir
    )
    config = _run_config_of(pyproject_text(cfg=cfg))
    assert config == cfg.to_flat()
    for key, value in cfg.to_flat().items():
        assert type(config[key]) is type(value), key
    assert RunConfig.from_flat(config) == cfg


def test_pyproject_names_the_apps(app_dir: Path) -> None:
    doc = tomllib.loads((app_dir / "pyproject.toml").read_text())
    assert doc["project"]["name"] == "fedssl"
    assert doc["project"]["dependencies"] == []  # devices install fedssl's dependencies
    comps = doc["tool"]["flwr"]["app"]["components"]
    assert comps == {"serverapp": "server.server_app:app", "clientapp": "client.client_app:app"}
    for ref in comps.values():
        module = ref.split(":")[0]
        assert (app_dir / (module.replace(".", "/") + ".py")).is_file()
    assert doc["tool"]["flwr"]["app"]["publisher"]


def test_pyproject_version_is_passed_through() -> None:
    assert tomllib.loads(pyproject_text("2.3.4"))["project"]["version"] == "2.3.4"


@pytest.mark.parametrize(
    "value", [True, False, 0, 7, 2**32, 0.001, 1e-8, 300.0, "", "plain", 'say "hi"', "C:\\dir\\x"]
)
def test_toml_values_round_trip(value: object) -> None:
    parsed = tomllib.loads(f"k = {_toml_value(value)}")["k"]
    assert parsed == value and type(parsed) is type(value)


def test_flwr_build_accepts_the_folder(app_dir: Path, tmp_path: Path) -> None:
    flwr = Path(sys.executable).parent / "flwr"
    if not flwr.exists():
        flwr = Path(shutil.which("flwr") or "flwr")
    env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_HOME": str(tmp_path / "flwr-home"),
    }
    proc = subprocess.run(
        [str(flwr), "build", "--app", str(app_dir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    fabs = list(tmp_path.glob("*.fab"))
    assert len(fabs) == 1, proc.stdout
    with zipfile.ZipFile(fabs[0]) as fab:
        names = set(fab.namelist())
        assert _run_config_of(fab.read("pyproject.toml").decode()) == RunConfig().to_flat()
    assert {"server/server_app.py", "client/client_app.py", "common/config.py"} <= names
