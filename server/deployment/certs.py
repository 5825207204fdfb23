"""``fedssl certs``: the TLS and node-identity material of a deployment, made with
``cryptography`` alone (no openssl binary).

Layout of ``--out DIR`` (private keys mode 0600, never overwritten):

    ca.crt  ca.key              certificate authority: clients trust ca.crt
    server.crt  server.key      the server's TLS certificate, SANs = --host values
    app-signing.crt/.key        signs the app bundle the server submits; devices run
                                only bundles signed with it (code-signing usage)
    nodes/NAME  nodes/NAME.pub  one EC P-256 key pair per edge node, OpenSSH format;
                                the server registers NAME.pub, the device keeps NAME

Run it again with new ``--node`` names to add devices: the CA and existing keys are
reused, so registered devices stay valid.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.errors import BadInputError
from common.keyfiles import check_private_key_file
from server.deployment.cert_check import certificate_names

NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def _write_private(path: Path, data: bytes) -> None:
    """Create with mode 0600 from the start (no window where the key is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _load_or_make_ca(out: Path, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    crt, key = out / "ca.crt", out / "ca.key"
    if crt.exists() and key.exists():
        check_private_key_file(key)
        ca_key = serialization.load_pem_private_key(key.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise BadInputError(f"{key} is not an EC private key")
        return x509.load_pem_x509_certificate(crt.read_bytes()), ca_key
    ca_key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedssl CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key, _pem_key(ca_key))
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, ca_key


def make_server_cert(
    out: Path,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    days: int,
) -> None:
    """(Re)issue server.crt/server.key for ``hosts``: replaced, since SANs may change."""
    key = _new_key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    for p in (out / "server.key", out / "server.crt"):
        p.unlink(missing_ok=True)
    _write_private(out / "server.key", _pem_key(key))
    (out / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_app_signing_cert(
    out: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, days: int
) -> bool:
    """Issue app-signing.crt/.key unless a valid one from this CA is there; True if new.

    Kept across runs (unlike the server certificate): nothing on the devices depends on
    it but the CA, yet re-issuing it every time would make audits harder to follow.
    """
    crt, key_path = out / "app-signing.crt", out / "app-signing.key"
    if crt.exists() and key_path.exists():
        check_private_key_file(key_path)
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        now = dt.datetime.now(dt.timezone.utc)
        if cert.issuer == ca.subject and cert.not_valid_after_utc > now:
            return False
    key = _new_key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedssl app signing")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    for p in (key_path, crt):
        p.unlink(missing_ok=True)
    _write_private(key_path, _pem_key(key))
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def make_node_key(nodes_dir: Path, name: str) -> bool:
    """Write nodes/NAME (OpenSSH private, 0600) and NAME.pub; False if it already exists."""
    if not NODE_NAME.fullmatch(name):
        raise BadInputError(
            f"node name {name!r}: use letters, digits, '.', '_' or '-' (at most 64 characters)"
        )
    priv = nodes_dir / name
    if priv.exists():
        check_private_key_file(priv)
        return False
    key = _new_key()
    _write_private(
        priv,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    pub = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (nodes_dir / f"{name}.pub").write_bytes(pub + f" {name}\n".encode())
    return True


def make_certs(
    out: str | Path,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    nodes: Sequence[str] = (),
    days: int = 365,
) -> Path:
    """Create or extend the material in ``out``; returns the folder."""
    if not hosts:
        raise BadInputError("give at least one --host for the server certificate")
    root = Path(out).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    nodes_dir = root / "nodes"
    nodes_dir.mkdir(exist_ok=True)
    ca, ca_key = _load_or_make_ca(root, days)
    make_server_cert(root, ca, ca_key, hosts, days)
    make_app_signing_cert(root, ca, ca_key, days)
    for name in nodes:
        make_node_key(nodes_dir, name)
    return root


LOOPBACK_NAME = "localhost"


def make_loopback_tls(folder: Path, days: int = 30) -> Path:
    """A throw-away CA and a ``localhost``/127.0.0.1 certificate for the hop between the
    proxy (and the daemon's own ``flwr`` calls) and the SuperLink on loopback; made anew
    at every daemon start, so it never depends on the names in the public certificate.
    The CA's key is deleted once the certificate is issued."""
    if folder.exists():
        for child in folder.iterdir():
            child.unlink()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    ca, ca_key = _load_or_make_ca(folder, days)
    make_server_cert(folder, ca, ca_key, (LOOPBACK_NAME, "127.0.0.1"), days)
    (folder / "ca.key").unlink()
    return folder


def _node_names(args: argparse.Namespace) -> list[str]:
    names = list(args.node or [])
    names += [f"node-{i:03d}" for i in range(1, args.nodes + 1)]
    return list(dict.fromkeys(names))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder for the CA, server and node keys")
    p.add_argument(
        "--host",
        action="append",
        default=None,
        help="server host name or IP address for the certificate (repeat; default: the "
        "names of the existing certificate in --out, else " + ", ".join(DEFAULT_HOSTS) + ")",
    )
    p.add_argument(
        "--nodes", type=int, default=0, help="make key pairs node-001 ... node-N (default: 0)"
    )
    p.add_argument("--node", action="append", help="make a key pair with this name (repeat)")
    p.add_argument("--days", type=int, default=365, help="validity (default: %(default)s)")


def _hosts(args: argparse.Namespace) -> list[str]:
    """--host values; without any, the names of the existing server certificate (adding
    a device must not change what the server is called), else the defaults."""
    if args.host:
        return list(args.host)
    existing = Path(args.out).expanduser() / "server.crt"
    if existing.is_file():
        names = certificate_names(x509.load_pem_x509_certificate(existing.read_bytes()))
        if names:
            return names
    return list(DEFAULT_HOSTS)


def run(args: argparse.Namespace) -> int:
    hosts = _hosts(args)
    names = _node_names(args)
    root = make_certs(args.out, hosts, names, args.days)
    print(f"CA:      {root / 'ca.crt'}  (copy to every device)")
    print(f"server:  {root / 'server.crt'}, {root / 'server.key'}  (hosts: {', '.join(hosts)})")
    print(f"apps:    {root / 'app-signing.crt'}, {root / 'app-signing.key'}  (stay on the server)")
    for name in names:
        print(
            f"node:    {root / 'nodes' / name}  (copy to the device, keep private); "
            f"register {root / 'nodes' / (name + '.pub')}"
        )
    return 0
