"""App-bundle signatures: a device accepts exactly the bundles its operator signed, with
certificates that ``fedssl certs`` makes (real keys, no mocks)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from common.app_signing import (
    APP_SIGNATURE_KEY,
    AppSignatureError,
    fab_digest,
    sign_fab,
    verify_fab,
)
from server.deployment.app_bundle import sign_app
from server.deployment.certs import make_certs

FAB = b"PK\x03\x04 a zipped app bundle " + bytes(range(256)) * 40


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("pki") / "certs", days=30)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another deployment's CA and app-signing key: a stranger's."""
    return make_certs(tmp_path_factory.mktemp("pki2") / "certs", days=30)


def _ca(certs: Path) -> bytes:
    return (certs / "ca.crt").read_bytes()


def test_the_operators_signature_is_accepted(certs: Path) -> None:
    token = sign_app(FAB, certs)
    assert "fedssl app signing" in verify_fab(FAB, token, _ca(certs), [APP_SIGNATURE_KEY])


def test_one_changed_byte_is_refused(certs: Path) -> None:
    token = sign_app(FAB, certs)
    tampered = FAB[:100] + bytes([FAB[100] ^ 1]) + FAB[101:]
    assert fab_digest(tampered) != fab_digest(FAB)
    with pytest.raises(AppSignatureError, match="does not match this app bundle"):
        verify_fab(tampered, token, _ca(certs))


def test_an_unsigned_app_is_refused(certs: Path) -> None:
    with pytest.raises(AppSignatureError, match="not signed"):
        verify_fab(FAB, "", _ca(certs))


@pytest.mark.parametrize("token", ["@@@", "e30=", "eyJ2IjogMX0=", "eyJ2IjogMiwgImNlcnQiOiAiIn0="])
def test_a_malformed_signature_is_refused(certs: Path, token: str) -> None:
    with pytest.raises(AppSignatureError, match="malformed"):
        verify_fab(FAB, token, _ca(certs))


def test_a_strangers_signature_is_refused(certs: Path, other: Path) -> None:
    """Signed properly, but by another CA's app-signing key."""
    token = sign_app(FAB, other)
    verify_fab(FAB, token, _ca(other))  # valid for its own devices
    with pytest.raises(AppSignatureError, match="not issued by this device's CA"):
        verify_fab(FAB, token, _ca(certs))


def test_a_tls_certificate_of_the_same_ca_cannot_sign_apps(certs: Path) -> None:
    """The server's TLS key is not an app-signing key, though the CA issued both."""
    token = sign_fab(FAB, _cert(certs / "server.crt"), _key(certs / "server.key"))
    with pytest.raises(AppSignatureError, match="not an app-signing certificate"):
        verify_fab(FAB, token, _ca(certs))


def test_an_expired_signing_certificate_is_refused(certs: Path) -> None:
    token = sign_app(FAB, certs)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31)
    with pytest.raises(AppSignatureError, match="not valid now"):
        verify_fab(FAB, token, _ca(certs), now=later)


def test_a_reconfigured_run_of_the_signed_app_is_refused(certs: Path) -> None:
    """Re-submitting the operator's own bundle with other run-config values (say, an
    out-dir of the attacker's choosing) is refused: the config is part of the bundle."""
    token = sign_app(FAB, certs)
    with pytest.raises(AppSignatureError, match="out-dir"):
        verify_fab(FAB, token, _ca(certs), [APP_SIGNATURE_KEY, "out-dir"])


def test_a_signature_from_a_swapped_certificate_is_refused(certs: Path, other: Path) -> None:
    """The stranger's signature presented with the operator's certificate: the chain
    holds, the signature does not."""
    import base64
    import json

    mine = json.loads(base64.urlsafe_b64decode(sign_app(FAB, certs)))
    theirs = json.loads(base64.urlsafe_b64decode(sign_app(FAB, other)))
    forged = base64.urlsafe_b64encode(
        json.dumps({**theirs, "cert": mine["cert"]}).encode()
    ).decode()
    with pytest.raises(AppSignatureError, match="does not match"):
        verify_fab(FAB, forged, _ca(certs))
