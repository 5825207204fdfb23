"""Signed app bundles: a device runs only the Flower app bundle (FAB) its operator signed.

Flower ships a run's code to every device as a FAB. Whoever can submit a run can
therefore run code on every device, so a device must check the bundle before any of
its code is imported. ``fedssl certs`` issues an *app-signing certificate* from the
deployment's CA (extended key usage: code signing); ``fedssl server`` signs the
SHA-256 of the FAB it submits and passes the signature as the run-config key
``app-signature``. A device already holds the CA certificate (``fedssl client --ca``)
and refuses a bundle unless:

- the signature token parses and carries a certificate issued by that CA, valid now,
  with the code-signing usage (a TLS server certificate from the same CA is refused);
- the ECDSA signature over the bundle's SHA-256 verifies with that certificate's key;
- the run overrides no run-config key but ``app-signature``: the whole run config is
  baked into the signed bundle, so a re-submitted bundle cannot be re-configured.

Framework-free: the Flower side (where the check runs) is ``client.flower_internals``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from common.errors import BadInputError

APP_SIGNATURE_KEY = "app-signature"
# Domain separation: this key signs nothing but FAB digests in this format.
SIGNED_PREFIX = b"fedssl app bundle v1\n"
TOKEN_VERSION = 1


class AppSignatureError(BadInputError):
    """An app bundle is unsigned, or its signature does not hold; the message says why."""


def fab_digest(fab: bytes) -> str:
    return hashlib.sha256(fab).hexdigest()


def _signed_bytes(digest: str) -> bytes:
    return SIGNED_PREFIX + digest.encode("ascii")


def sign_fab(
    fab: bytes, signer_cert: x509.Certificate, signer_key: ec.EllipticCurvePrivateKey
) -> str:
    """The ``app-signature`` token for ``fab``: the signer's certificate and its signature."""
    signature = signer_key.sign(_signed_bytes(fab_digest(fab)), ec.ECDSA(hashes.SHA256()))
    payload = {
        "v": TOKEN_VERSION,
        "cert": signer_cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        "sig": base64.b64encode(signature).decode("ascii"),
    }
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode("ascii")


def _parse_token(token: str) -> tuple[x509.Certificate, bytes]:
    if not token:
        raise AppSignatureError(
            "the app is not signed (no app-signature in its run config): only the "
            "operator's `fedssl server` submits signed apps"
        )
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        if payload.get("v") != TOKEN_VERSION:
            raise ValueError(f"unknown token version {payload.get('v')!r}")
        cert = x509.load_pem_x509_certificate(str(payload["cert"]).encode("ascii"))
        signature = base64.b64decode(str(payload["sig"]), validate=True)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AppSignatureError(f"the app-signature is malformed ({exc})") from exc
    return cert, signature


def _check_signer(cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise AppSignatureError(
            f"the app was signed by {cert.subject.rfc4514_string()!r}, whose certificate "
            "was not issued by this device's CA (--ca)"
        ) from exc
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise AppSignatureError(
            f"the app-signing certificate is not valid now (valid "
            f"{cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})"
        )
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
        raise AppSignatureError(
            f"the certificate of {cert.subject.rfc4514_string()!r} is not an app-signing "
            "certificate (no code-signing usage)"
        )


def verify_fab(
    fab: bytes,
    token: str,
    ca_pem: bytes,
    override_keys: Iterable[str] = (),
    now: dt.datetime | None = None,
) -> str:
    """Check ``fab`` against its ``app-signature`` token; return the signer's name.

    ``override_keys`` are the run-config keys the run overrides; only the signature
    itself may be one. Raises :class:`AppSignatureError` naming the first failed check.
    """
    extra = sorted(set(override_keys) - {APP_SIGNATURE_KEY})
    if extra:
        raise AppSignatureError(
            f"the run overrides run-config keys the operator did not sign: {', '.join(extra)}"
        )
    cert, signature = _parse_token(token)
    ca = x509.load_pem_x509_certificate(ca_pem)
    _check_signer(cert, ca, now or dt.datetime.now(dt.timezone.utc))
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AppSignatureError("the app-signing certificate does not hold an EC key")
    try:
        key.verify(signature, _signed_bytes(fab_digest(fab)), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise AppSignatureError(
            "the app-signature does not match this app bundle: it was signed for different code"
        ) from exc
    return cert.subject.rfc4514_string()
