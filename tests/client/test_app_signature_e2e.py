"""A device runs only the operator's signed app, even when the server's control plane is
open: foreign apps sent to a real ``fedssl client`` through a real SuperLink (with no
fedssl proxy in front) never run, and a signed one does (the positive control)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bare_superlink import ENV, BareSuperLink
from foreign_app import markers, write_foreign_app

from common.app_signing import APP_SIGNATURE_KEY
from server.deployment.app_bundle import build_fab, sign_app
from server.deployment.certs import make_certs


def _wait_for(path: Path, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def test_device_refuses_foreign_apps_and_runs_the_signed_one(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs", nodes=["node-001"], days=5)
    stranger = make_certs(tmp_path / "stranger", days=5)
    link = BareSuperLink(tmp_path / "link", certs)
    data = tmp_path / "device.npz"
    np.savez(data, x=np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32))
    log = tmp_path / "client.log"
    client = None
    try:
        link.wait_up()
        rc, out = link.flwr("supernode", "register", str(certs / "nodes" / "node-001.pub"))
        assert rc == 0, out
        with open(log, "ab") as fh:
            client = subprocess.Popen(
                [sys.executable, "-m", "common.cli", "client", "--server", f"127.0.0.1:{link.port}",
                 "--data", str(data), "--key", str(certs / "nodes" / "node-001"),
                 "--ca", str(certs / "ca.crt"), "--state-dir", str(tmp_path / "device")],
                stdout=fh, stderr=subprocess.STDOUT, env=ENV,
            )  # fmt: skip
        env = {**ENV, "FLWR_HOME": str(link.home)}
        for case, signer in (("unsigned", None), ("stranger", stranger), ("operator", certs)):
            marker = tmp_path / f"markers-{case}"
            app = write_foreign_app(tmp_path / f"app-{case}", marker)
            args = ["run", str(app)]
            if signer is not None:
                signature = sign_app(
                    build_fab(app, str(Path(sys.executable).parent / "flwr"), env), signer
                )
                args += ["--run-config", f"{APP_SIGNATURE_KEY}='{signature}'"]
            rc, out = link.flwr(*args)
            assert rc == 0, out  # the open control plane accepts anything
            _wait_for(marker / "server-replies.txt", 180, f"the {case} app's replies", log)
            found = markers(marker)
            replies = (marker / "server-replies.txt").read_text()
            if case == "operator":  # positive control: a signed app does run, and could harm
                assert [m for m in found if m.startswith("client-ran-")], (found, replies)
                stolen = next(marker.glob("client-ran-*")).read_text()
                assert stolen == data.read_bytes()[:64].hex()
            else:
                assert not [m for m in found if m.startswith("client-ran-")], (case, found)
                reason = "not signed" if case == "unsigned" else "not issued by this device's CA"
                assert reason in replies, replies
                assert reason in log.read_text()
        assert client.poll() is None, log.read_text()[-3000:]
    finally:
        if client is not None and client.poll() is None:
            client.terminate()
            client.wait(60)
        link.stop()
