"""The Flower app that ``fedssl server`` submits, and its signature.

Flower ships the code of a run to the SuperLink and every SuperNode as a bundle (FAB)
built from a project folder. An installed fedssl (a wheel) has no project folder,
so one is assembled here from the installed packages: a generated ``pyproject.toml``
naming the ServerApp and ClientApp, with the run's whole configuration as its
``[tool.flwr.app.config]``, and the ``common``, ``server`` and ``client`` sources.
Devices still need fedssl's dependencies installed: runtime dependency installation
stays off.

The run's configuration lives in the bundle, not in run-config overrides, so that one
signature covers code and configuration: ``flwr build`` makes the same bytes that
``flwr run`` will submit (Flower's builder is deterministic: sorted files, fixed
dates), the daemon signs their SHA-256 with the app-signing key
(``common.app_signing``), and the only override the run carries is that signature.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from common.app_signing import APP_SIGNATURE_KEY, sign_fab
from common.config import RunConfig

PACKAGES = ("common", "server", "client")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def pyproject_text(version: str = "0.1.0", cfg: RunConfig | None = None) -> str:
    flat = {**(cfg or RunConfig()).to_flat(), APP_SIGNATURE_KEY: ""}
    config = "\n".join(f"{k} = {_toml_value(v)}" for k, v in flat.items())
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


def build_app_dir(dest: str | Path, cfg: RunConfig | None = None) -> Path:
    """Write the app folder for run ``cfg`` (default: the defaults) to ``dest``
    (replaced if present) and return it."""
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
            shutil.copyfile(path, target)  # new file, private mode (the umask), unlike copy2
    (root / "pyproject.toml").write_text(pyproject_text(cfg=cfg))
    return root


def build_fab(app_dir: Path, flwr: str, env: dict[str, str]) -> bytes:
    """The bundle ``flwr run`` will make of ``app_dir``, built by ``flwr build``."""
    with tempfile.TemporaryDirectory(prefix="fedssl-fab-") as tmp:
        res = subprocess.run(
            [flwr, "build", "--app", str(app_dir)],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        fabs = list(Path(tmp).glob("*.fab"))
        if res.returncode != 0 or len(fabs) != 1:
            raise RuntimeError(f"flwr build failed: {(res.stdout + res.stderr).strip()[-500:]}")
        return fabs[0].read_bytes()


def sign_app(fab: bytes, certs: Path) -> str:
    """The ``app-signature`` of ``fab`` with ``certs/app-signing.key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from common.keyfiles import check_private_key_file

    key_file = check_private_key_file(certs / "app-signing.key")
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_file} is not an EC private key")
    cert = x509.load_pem_x509_certificate((certs / "app-signing.crt").read_bytes())
    return sign_fab(fab, cert, key)
