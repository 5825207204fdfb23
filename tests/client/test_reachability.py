"""A device that cannot reach its server says where and why (real sockets, a real
`fedssl client` process)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from client.reachability import why_unreachable
from common.environment import daemon_env
from server.deployment.certs import make_certs


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TLS listener with a certificate from one CA; yields its address and a stranger CA."""
    ours = make_certs(tmp_path / "ours", nodes=[], hosts=["127.0.0.1"])
    stranger = make_certs(tmp_path / "stranger", nodes=[], hosts=["127.0.0.1"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ours / "server.crt", ours / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield f"127.0.0.1:{port}", stranger / "ca.crt"
    listener.close()


def test_a_closed_port_is_named_with_its_cause() -> None:
    port = _closed_port()
    why = why_unreachable(f"127.0.0.1:{port}", None)
    assert f"127.0.0.1:{port}" in why and "connection refused" in why


def test_an_unresolvable_host_is_named() -> None:
    assert "does not resolve" in why_unreachable("no-such-host.invalid:9092", None)


def test_a_server_certificate_from_another_ca_is_named(tls_server: tuple[str, Path]) -> None:
    address, stranger_ca = tls_server
    assert "does not verify against --ca" in why_unreachable(address, stranger_ca)


def test_a_reachable_plaintext_port_is_fine_without_a_ca() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert why_unreachable(f"127.0.0.1:{listener.getsockname()[1]}", None) == ""


def test_the_client_names_the_address_and_stops_retrying_after_giving_up(tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((8, 1, 8, 8), np.float32))
    server = f"127.0.0.1:{_closed_port()}"
    argv = [sys.executable, "-m", "common.cli", "client", "--server", server, "--data", str(data),
            "--insecure", "--max-wait-time", "6", "--state-dir", str(tmp_path / "state")]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=daemon_env())
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"cannot connect to {server}: nothing accepts connections" in proc.stderr
    assert "a wrong --server port, or the server is not running" in proc.stderr.splitlines()[-1]
    assert "Connection attempt failed" not in proc.stderr  # Flower's bare retry lines
