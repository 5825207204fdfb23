"""Why a device cannot join its server, in words.

Flower's SuperNode says only "Connection attempt failed, retrying", without the address
or the cause, and exits with a code and a Flower error. ``RetryReporter`` replaces the
retry lines with one line, at most every 30 s, that probes the address and names the
cause; ``diagnose`` reads a SuperNode's exit output in the words a device operator needs.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from pathlib import Path

PROBE_TIMEOUT_S = 3.0
REFUSED = "Failed to activate SuperNode"
log = logging.getLogger("fedssl.client")


def why_unreachable(server: str, ca: Path | None) -> str:
    """ "" when ``server`` (HOST:PORT) accepts a connection (and, with ``ca``, a TLS
    handshake that verifies); otherwise what went wrong, naming the address."""
    host, _, port = server.rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S)
    except ConnectionRefusedError:
        return (
            f"nothing accepts connections at {server} (connection refused): a wrong "
            "--server port, or the server is not running"
        )
    except TimeoutError:
        return (
            f"{server} does not answer within {PROBE_TIMEOUT_S:g} s (a firewall, or a wrong host)"
        )
    except socket.gaierror:
        return f"the host name {host!r} of --server {server} does not resolve"
    except (OSError, ValueError) as exc:
        return f"cannot connect to {server}: {exc}"
    with sock:
        if ca is None:
            return ""
        ctx = ssl.create_default_context(cafile=str(ca))
        try:
            with ctx.wrap_socket(sock, server_hostname=host):
                return ""
        except ssl.SSLCertVerificationError as exc:
            return f"the certificate of {server} does not verify against --ca: {exc.verify_message}"
        except (ssl.SSLError, OSError) as exc:
            return f"no TLS handshake with {server} ({exc}): is this the fedssl server's port?"


class RetryReporter:
    """Flower's retry lines, replaced by one line that names the address and the cause
    (at most every ``every_s``); after the SuperNode gives up, its SuperExec's retries
    against the stopped node are dropped."""

    def __init__(self, server: str, ca: Path | None, every_s: float = 30.0) -> None:
        self.server, self.ca, self.every_s = server, ca, every_s
        self.last: float | None = None
        self.gave_up = False

    def takes(self, line: str) -> bool:
        if "Giving up reconnection" in line:
            self.gave_up = True
            return False
        if "Connection attempt failed" not in line:
            return False
        now = time.monotonic()
        if not self.gave_up and (self.last is None or now - self.last >= self.every_s):
            self.last = now
            why = why_unreachable(self.server, self.ca) or "the connection failed"
            log.warning("cannot connect to %s: %s; retrying", self.server, why)
        return True


# What a SuperNode's exit output means, in the words a device operator needs.
DIAGNOSES = (
    (
        REFUSED,
        "the server refused this device: its public key is not registered there "
        "(on the server: `fedssl server --register KEY.pub ...`), or it still holds a "
        "session of this device from another process",
    ),
    (
        "Connection refused",
        "nothing accepts connections at the server's address: a wrong --server port, or "
        "the server is not running",
    ),
    (
        "Server disconnected without sending a response",
        "the server closed the connection: a plaintext client (--insecure) against a TLS "
        "server, or the wrong port",
    ),
    (
        "400 Bad Request' for url 'http://",
        "the server refused a plaintext request: a plaintext client (--insecure) against a "
        "TLS server",
    ),
    (
        "CERTIFICATE_VERIFY_FAILED",
        "the server's certificate does not verify against --ca (wrong CA, or the host name "
        "is not in the certificate: `fedssl certs --host NAME`)",
    ),
)


def diagnose(lines: list[str]) -> str:
    text = "\n".join(lines)
    for needle, meaning in DIAGNOSES:
        if needle in text:
            return meaning
    return ""
