"""Flower starts a fresh ClientApp process for every message; three of SecAgg+'s four
stages never train, so loading the app must not import torch or read data."""

from __future__ import annotations

import subprocess
import sys


def test_client_app_loads_without_torch() -> None:
    code = (
        "import sys, client.client_app; "
        "heavy = [m for m in ('torch', 'sklearn', 'pandas') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"client app imports {out.stdout.strip()} at load time"
