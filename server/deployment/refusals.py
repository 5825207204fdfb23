"""One server log line per refused device, not one raw error per attempt.

The SuperLink logs every refused activation as an ``ApiError`` line holding the
device's whole PEM public key, and a refused device retries. ``RefusalLog`` reads
those lines from the SuperLink's output and logs, once per key and cause, which device
was refused and why, by the key's fingerprint: the SHA-256 of its OpenSSH form, the
same short id that ``fedssl client`` prints for its key. Every attempt stays in
``logs/superlink.log``.
"""

from __future__ import annotations

import hashlib
import logging
import re

REFUSAL = re.compile(
    r"activate-node\]\[ApiError:\d+\] Attempted to register SuperNode with public key: "
    r"b'(?P<pem>-----BEGIN PUBLIC KEY-----.*?-----END PUBLIC KEY-----)\\n', exception: "
    r"(?P<why>.*)$"
)
UNKNOWN_KEY = "No SuperNode found"
log = logging.getLogger("fedssl.server")


def fingerprint(pem: str) -> str:
    """The key's short id: SHA-256 of its OpenSSH encoding, 16 hex digits (the same as
    ``client.state_lock.device_id``); "unreadable key" when it does not parse."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(pem.replace("\\n", "\n").encode())
        openssh = key.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    except (ValueError, TypeError):
        return "unreadable key"
    return hashlib.sha256(openssh).hexdigest()[:16]


class RefusalLog:
    """Turns the SuperLink's refusal lines into one warning per device and cause."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], int] = {}

    def takes(self, text: str) -> bool:
        """True when ``text`` is a refusal line (logged once per key and cause)."""
        m = REFUSAL.search(text)
        if m is None:
            return False
        key = fingerprint(m["pem"])
        unknown = UNKNOWN_KEY in m["why"]
        count = self.seen.get((key, str(unknown)), 0)
        self.seen[(key, str(unknown))] = count + 1
        if count:
            return True
        if unknown:
            log.warning(
                "refused a device whose key is not registered (fingerprint %s); further "
                "attempts are only in superlink.log. To admit it: `fedssl server --register "
                "KEY.pub` at the next start",
                key,
            )
        else:
            log.warning(
                "refused device key %s: the server still counts an earlier session of it as "
                "online (another process with the same key, or a crashed device whose "
                "session expires within about a minute)",
                key,
            )
        return True
