"""The server's log names a refused device once, by the fingerprint its client prints."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from client.state_lock import device_id
from server.deployment.certs import make_certs
from server.deployment.refusals import RefusalLog, fingerprint

UNKNOWN = "No SuperNode found with the given public key."


def _superlink_line(pem: bytes, why: str) -> str:
    """The SuperLink's line for a refused activation, formatted as Flower 1.42 does
    (``fleet_handlers.activate_node``: the request's key bytes with ``!r``)."""
    return (
        "ERROR :     [/v1/fleet/activate-node][ApiError:2004] Attempted to register "
        f"SuperNode with public key: {pem!r}, exception: {why}"
    )


def _pem(key_file: Path) -> bytes:
    private = serialization.load_ssh_private_key(key_file.read_bytes(), password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_one_line_per_device_and_cause_with_the_clients_fingerprint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certs = make_certs(tmp_path / "certs", nodes=["node-001", "node-002"])
    one, two = certs / "nodes" / "node-001", certs / "nodes" / "node-002"
    refusals = RefusalLog()
    with caplog.at_level(logging.WARNING, logger="fedssl.server"):
        for _ in range(5):  # a refused device retries
            assert refusals.takes(_superlink_line(_pem(one), UNKNOWN))
        assert refusals.takes(_superlink_line(_pem(two), UNKNOWN))
        held = "SuperNode with node ID 7 could not be activated."
        assert refusals.takes(_superlink_line(_pem(one), held))
        assert not refusals.takes("INFO :      [Fleet.ActivateNode] Activated node_id=7")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert device_id(one, "any") in lines[0] and "not registered" in lines[0]
    assert device_id(two, "any") in lines[1]
    assert device_id(one, "any") in lines[2] and "earlier session" in lines[2]
    assert not any("BEGIN PUBLIC KEY" in line for line in lines)


def test_an_unparsable_key_is_still_one_line() -> None:
    assert fingerprint("-----BEGIN PUBLIC KEY-----\\nnot a key\\n-----END PUBLIC KEY-----") == (
        "unreadable key"
    )
