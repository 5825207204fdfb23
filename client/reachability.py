"""Why a device cannot reach its server, in words: Flower's SuperNode only says
"Connection attempt failed, retrying", without the address or the cause."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

PROBE_TIMEOUT_S = 3.0


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
