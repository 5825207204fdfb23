"""The proxy in front of the SuperLink: a real nginx with the configuration ``fedssl
server`` writes, in front of a recording HTTPS upstream that stands where the SuperLink
stands (the loopback tests run it in front of the real one)."""

from __future__ import annotations

import http.client
import http.server
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attacks import REFUSED_ROUTES
from bare_superlink import free_port

from common.processes import Child
from server.deployment.certs import LOOPBACK_NAME, make_certs, make_loopback_tls
from server.deployment.proxy import (
    FLEET_ROUTES,
    ProxyError,
    ProxySettings,
    config_text,
    find_nginx,
    start_proxy,
    wait_listening,
)

try:
    NGINX = find_nginx()
except ProxyError:
    NGINX = ""
pytestmark = pytest.mark.skipif(
    not NGINX, reason="nginx is not installed (apt-get install nginx-light)"
)

# Every route a SuperLink serves but devices need, and paths that try to sneak past.
REFUSED_PATHS = [
    *REFUSED_ROUTES,
    "/",
    "/v1/fleet/pull-messages/../../control/list-runs",
    "/v1/fleet/%2e%2e/control/list-runs",
    "/v1/fleet/pull-messagesX",
    "/v1/fleet/pull-messages/extra",
]


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, int, str]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        self.seen.append(("POST", self.path, n, self.headers.get("flwr-signature-bin", "")))
        self._answer()

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(("GET", self.path, 0, ""))
        self._answer()

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProxySettings, Path]]:
    root = tmp_path_factory.mktemp("proxy")
    certs = make_certs(root / "certs", days=5)
    loop_tls = make_loopback_tls(root / "loopback")
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(loop_tls / "server.crt", loop_tls / "server.key")
    upstream.socket = ctx.wrap_socket(upstream.socket, server_side=True)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    (root / "logs").mkdir()
    s = ProxySettings(
        folder=root / "proxy",
        logs=root / "logs",
        listen_host="127.0.0.1",
        listen_port=free_port(),
        upstream_port=upstream.server_address[1],
        upstream_ca=loop_tls / "ca.crt",
        upstream_name=LOOPBACK_NAME,
        cert=certs / "server.crt",
        key=certs / "server.key",
    )
    child: Child = start_proxy(s, NGINX, dict(os.environ))
    try:
        wait_listening(child, s)
        yield s, certs
    finally:
        child.stop()
        upstream.shutdown()


def _request(
    s: ProxySettings, certs: Path, method: str, path: str, body: bytes = b"", **headers: str
) -> int:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    conn = http.client.HTTPSConnection("localhost", s.listen_port, context=ctx, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_device_api_passes_with_its_headers(proxy: tuple[ProxySettings, Path]) -> None:
    s, certs = proxy
    _Recorder.seen.clear()
    for route in FLEET_ROUTES:
        status = _request(
            s, certs, "POST", f"/v1/fleet/{route}", b"x" * 1000, **{"flwr-signature-bin": "c2ln"}
        )
        assert status == 200, route
    assert [(m, p, n, sig) for m, p, n, sig in _Recorder.seen] == [
        ("POST", f"/v1/fleet/{r}", 1000, "c2ln") for r in FLEET_ROUTES
    ]


@pytest.mark.parametrize("path", REFUSED_PATHS)
def test_everything_else_is_refused_before_the_superlink(
    proxy: tuple[ProxySettings, Path], path: str
) -> None:
    s, certs = proxy
    _Recorder.seen.clear()
    for method in ("POST", "GET"):
        assert _request(s, certs, method, path, b"{}") in (400, 403, 404), (method, path)
    assert _Recorder.seen == []


def test_a_device_route_by_get_is_refused(proxy: tuple[ProxySettings, Path]) -> None:
    s, certs = proxy
    _Recorder.seen.clear()
    assert _request(s, certs, "GET", "/v1/fleet/pull-messages") == 403
    assert _Recorder.seen == []


def test_a_huge_body_is_refused_unread(proxy: tuple[ProxySettings, Path]) -> None:
    s, certs = proxy
    _Recorder.seen.clear()
    body = b"\0" * (17 * 1024 * 1024)
    try:
        status = _request(s, certs, "POST", "/v1/fleet/push-object", body)
    except (ConnectionError, ssl.SSLError):  # nginx may close before the body is sent
        status = 413
    assert status == 413
    assert _Recorder.seen == []


def test_plaintext_and_garbage_get_nothing_through(proxy: tuple[ProxySettings, Path]) -> None:
    s, _ = proxy
    _Recorder.seen.clear()
    for payload in (b"POST /v1/fleet/pull-messages HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096)):
        with socket.create_connection(("127.0.0.1", s.listen_port), timeout=15) as sock:
            sock.sendall(payload)
            try:
                sock.recv(4096)
            except (ConnectionError, TimeoutError):
                pass
    assert _Recorder.seen == []


def test_an_idle_connection_is_closed(proxy: tuple[ProxySettings, Path]) -> None:
    """A connection that never sends a request is closed after the header timeout."""
    s, _ = proxy
    with socket.create_connection(("127.0.0.1", s.listen_port), timeout=30) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""  # closed by nginx
        assert time.monotonic() - start < 25


def test_insecure_config_listens_in_plaintext_and_still_filters(tmp_path: Path) -> None:
    s = ProxySettings(
        folder=tmp_path,
        logs=tmp_path,
        listen_host="0.0.0.0",
        listen_port=9,
        upstream_port=8,
        upstream_ca=None,
    )
    text = config_text(s, tmp_path / "tmp")
    assert "ssl_certificate" not in text and " ssl;" not in text
    assert "proxy_pass http://superlink" in text
    assert "listen 9;" in text and "return 403" in text
    # Lab mode has no node authentication: devices register themselves, as in Flower.
    assert "register-node|unregister-node" in text
