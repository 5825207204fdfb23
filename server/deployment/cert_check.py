"""Refuse, before anything starts, a server certificate that cannot work: devices would
otherwise fail their TLS check against a server that looks healthy."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from common.config import ConfigError


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for (its SANs)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        *san.get_values_for_type(x509.DNSName),
        *map(str, san.get_values_for_type(x509.IPAddress)),
    ]


def _names_match(name: str, names: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(name)
        return any(_same_ip(ip, n) for n in names)
    except ValueError:
        host = name.lower().rstrip(".")
        return any(
            n.lower() == host or (n.startswith("*.") and host.split(".", 1)[-1] == n[2:].lower())
            for n in names
        )


def _same_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, name: str) -> bool:
    try:
        return ipaddress.ip_address(name) == ip
    except ValueError:
        return False


def check_server_certificate(certs: Path, public_name: str) -> list[str]:
    """Refuse a server certificate that cannot work: not from ``ca.crt``, expired, not
    matching ``server.key``, or not naming ``public_name`` (the address devices use).
    Returns the names it holds."""
    ca = x509.load_pem_x509_certificate((certs / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((certs / "server.crt").read_bytes())
    key = serialization.load_pem_private_key((certs / "server.key").read_bytes(), password=None)
    names = certificate_names(cert)
    fix = f"re-issue it: `fedssl certs --out {certs} --host NAME` (one --host per name)"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError(
            f"{certs / 'server.crt'} was not issued by {certs / 'ca.crt'}; {fix}"
        ) from exc
    now = dt.datetime.now(dt.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise ConfigError(
            f"{certs / 'server.crt'} is valid from {cert.not_valid_before_utc:%Y-%m-%d} to "
            f"{cert.not_valid_after_utc:%Y-%m-%d}, not now; {fix}"
        )
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(
        serialization.Encoding.DER, pub
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, pub):
        raise ConfigError(f"{certs / 'server.key'} is not the key of {certs / 'server.crt'}; {fix}")
    if public_name and not _names_match(public_name, names):
        raise ConfigError(
            f"the server certificate names {', '.join(names) or 'nothing'}, not {public_name!r}, "
            f"the address devices will connect to (--host / --public-address): their TLS "
            f"check would fail; {fix.replace('NAME', public_name)}"
        )
    return names
