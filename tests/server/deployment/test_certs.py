"""``fedssl certs``: a CA, a server certificate for the requested hosts, device key pairs;
private keys owner-only, and a second run extends the material without replacing it."""

from __future__ import annotations

import concurrent.futures
import ipaddress
import os
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from common.cli import main
from common.keyfiles import KeyFileError
from server.deployment.cert_check import certificate_names
from server.deployment.certs import (
    DEFAULT_HOSTS,
    make_certs,
    make_loopback_tls,
    make_node_key,
)

HOSTS = ["fl.example.org", "localhost", "10.1.2.3", "127.0.0.1", "::1"]


@pytest.fixture(autouse=True)
def _flower_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # common.cli.main forces these into os.environ; setting them here restores them after.
    monkeypatch.setenv("FLWR_TELEMETRY_ENABLED", "0")
    monkeypatch.setenv("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    return make_certs(tmp_path / "certs", HOSTS, ["edge-1", "edge-2"], days=30)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _handshake(root: Path, server_hostname: str) -> None:
    """One in-memory TLS handshake: a client trusting only ca.crt, checking the host name."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(root / "server.crt", root / "server.key")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    client_ctx.load_verify_locations(root / "ca.crt")
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError(f"handshake did not finish: {done}")


# ---- files and modes -----------------------------------------------------------------


def test_layout_and_private_key_modes(certs: Path) -> None:
    for name in ("ca.crt", "ca.key", "server.crt", "server.key", "app-signing.crt"):
        assert (certs / name).is_file(), name
    for key in ("ca.key", "server.key", "app-signing.key", "nodes/edge-1", "nodes/edge-2"):
        assert _mode(certs / key) == 0o600, key
    for pub in ("ca.crt", "server.crt", "nodes/edge-1.pub"):
        assert _mode(certs / pub) & 0o077 != 0o077  # readable public material exists
    assert _mode(certs) == 0o700
    assert sorted(p.name for p in (certs / "nodes").iterdir()) == [
        "edge-1",
        "edge-1.pub",
        "edge-2",
        "edge-2.pub",
    ]


def test_private_keys_are_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        root = make_certs(tmp_path / "c", ["localhost"], ["n1"])
    finally:
        os.umask(old)
    for key in ("ca.key", "server.key", "nodes/n1"):
        assert _mode(root / key) == 0o600, key


def test_private_keys_are_pem_ec_p256(certs: Path) -> None:
    for name in ("ca.key", "server.key"):
        key = serialization.load_pem_private_key((certs / name).read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)


# ---- certificates ---------------------------------------------------------------------


def test_server_certificate_is_signed_by_the_ca(certs: Path) -> None:
    ca, srv = _cert(certs / "ca.crt"), _cert(certs / "server.crt")
    srv.verify_directly_issued_by(ca)  # raises if the signature or issuer does not match
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not srv.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    # The certificate's key is the one in server.key.
    key = serialization.load_pem_private_key((certs / "server.key").read_bytes(), password=None)
    assert key.public_key().public_numbers() == srv.public_key().public_numbers()


def test_server_certificate_is_valid_for_the_requested_days(certs: Path) -> None:
    srv = _cert(certs / "server.crt")
    days = (srv.not_valid_after_utc - srv.not_valid_before_utc).days
    assert 29 <= days <= 30


def test_san_holds_dns_names_and_ip_addresses_separately(certs: Path) -> None:
    san = _cert(certs / "server.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert sorted(san.value.get_values_for_type(x509.DNSName)) == ["fl.example.org", "localhost"]
    assert set(san.value.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


def test_default_hosts(tmp_path: Path) -> None:
    root = make_certs(tmp_path / "c")
    san = _cert(root / "server.crt").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    names = san.value.get_values_for_type(x509.DNSName)
    ips = {str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)}
    assert set(names) | ips == set(DEFAULT_HOSTS)


@pytest.mark.parametrize("host", ["fl.example.org", "localhost", "10.1.2.3"])
def test_tls_client_trusting_the_ca_accepts_each_host(certs: Path, host: str) -> None:
    _handshake(certs, host)


@pytest.mark.parametrize("host", ["other.example.org", "10.1.2.4"])
def test_tls_client_refuses_a_host_not_in_the_certificate(certs: Path, host: str) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(certs, host)


def test_tls_client_trusting_another_ca_refuses(certs: Path, tmp_path: Path) -> None:
    other = make_certs(tmp_path / "other", HOSTS)
    (tmp_path / "mixed").mkdir()
    for name in ("server.crt", "server.key"):
        (tmp_path / "mixed" / name).write_bytes((certs / name).read_bytes())
    (tmp_path / "mixed" / "ca.crt").write_bytes((other / "ca.crt").read_bytes())
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(tmp_path / "mixed", "localhost")


@pytest.fixture
def grpc_server(certs: Path) -> Iterator[int]:
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    creds = grpc.ssl_server_credentials(
        [((certs / "server.key").read_bytes(), (certs / "server.crt").read_bytes())]
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    yield port
    server.stop(0)


@pytest.mark.parametrize("name", [None, "localhost", "fl.example.org"])
def test_grpc_tls_channel_to_the_server_becomes_ready(
    certs: Path, grpc_server: int, name: str | None
) -> None:
    """What Flower does: a gRPC channel with root certificate ca.crt (name None: by IP)."""
    options = [("grpc.ssl_target_name_override", name)] if name else []
    creds = grpc.ssl_channel_credentials((certs / "ca.crt").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{grpc_server}", creds, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=4)


# ---- node keys ------------------------------------------------------------------------


def test_node_keys_load_as_openssh_and_match(certs: Path) -> None:
    for name in ("edge-1", "edge-2"):
        priv = serialization.load_ssh_private_key((certs / "nodes" / name).read_bytes(), None)
        pub_text = (certs / "nodes" / f"{name}.pub").read_bytes()
        pub = serialization.load_ssh_public_key(pub_text)
        assert isinstance(priv, ec.EllipticCurvePrivateKey)
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        assert isinstance(pub.curve, ec.SECP256R1)
        assert priv.public_key().public_numbers() == pub.public_numbers()
        fields = pub_text.decode().split()
        assert fields[0] == "ecdsa-sha2-nistp256" and fields[-1] == name
    a = serialization.load_ssh_public_key((certs / "nodes" / "edge-1.pub").read_bytes())
    b = serialization.load_ssh_public_key((certs / "nodes" / "edge-2.pub").read_bytes())
    assert a.public_numbers() != b.public_numbers()  # one key pair per device


def test_second_run_keeps_ca_and_existing_node_keys(certs: Path) -> None:
    before = {
        rel: (certs / rel).read_bytes()
        for rel in ("ca.crt", "ca.key", "nodes/edge-1", "nodes/edge-1.pub", "nodes/edge-2")
    }
    make_certs(certs, ["newhost.example"], ["edge-1", "edge-3"], days=30)
    for rel, data in before.items():
        assert (certs / rel).read_bytes() == data, f"{rel} changed"
    assert _mode(certs / "nodes" / "edge-3") == 0o600
    # The server certificate is reissued for the new hosts, by the same CA.
    srv = _cert(certs / "server.crt")
    srv.verify_directly_issued_by(_cert(certs / "ca.crt"))
    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["newhost.example"]
    assert _mode(certs / "server.key") == 0o600
    _handshake(certs, "newhost.example")


def test_make_node_key_reports_whether_it_made_one(tmp_path: Path) -> None:
    assert make_node_key(tmp_path, "dev") is True
    data = (tmp_path / "dev").read_bytes()
    assert make_node_key(tmp_path, "dev") is False
    assert (tmp_path / "dev").read_bytes() == data


@pytest.mark.parametrize(
    "name",
    ["", "../evil", "a/b", ".hidden", "-dash", "_under", "with space", "x" * 65, "é", "a\nb"],
)
def test_invalid_node_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="node name"):
        make_certs(tmp_path / "c", ["localhost"], [name])
    assert not (tmp_path / "evil").exists()
    assert not list((tmp_path / "c" / "nodes").iterdir())


def test_node_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="node name"):
        make_node_key(tmp_path, "edge\n")


@pytest.mark.parametrize("name", ["a", "node-001", "edge_7.lab", "A" * 64])
def test_valid_node_names(tmp_path: Path, name: str) -> None:
    make_certs(tmp_path / "c", ["localhost"], [name])
    assert (tmp_path / "c" / "nodes" / name).is_file()


def test_no_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--host"):
        make_certs(tmp_path / "c", [])


def test_readable_ca_key_is_refused_on_rerun(certs: Path) -> None:
    os.chmod(certs / "ca.key", 0o644)
    with pytest.raises(KeyFileError, match="ca.key"):
        make_certs(certs, HOSTS)


def test_readable_node_key_is_refused_on_rerun(certs: Path) -> None:
    os.chmod(certs / "nodes" / "edge-1", 0o640)
    with pytest.raises(KeyFileError, match="edge-1"):
        make_certs(certs, HOSTS, ["edge-1"])


# ---- the command ----------------------------------------------------------------------


def test_cli_certs_makes_numbered_and_named_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deploy"
    argv = ["certs", "--out", str(out), "--nodes", "2", "--node", "lab-pi", "--node", "node-001"]
    argv += ["--host", "srv.example", "--host", "192.168.7.1", "--days", "10"]
    assert main(argv) == 0
    nodes = sorted(p.name for p in (out / "nodes").glob("*.pub"))
    assert nodes == ["lab-pi.pub", "node-001.pub", "node-002.pub"]
    srv = _cert(out / "server.crt")
    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["srv.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.168.7.1")]
    assert (srv.not_valid_after_utc - srv.not_valid_before_utc).days in (9, 10)
    text = capsys.readouterr().out
    assert str(out / "ca.crt") in text
    assert text.count("node:") == 3  # node-001 named twice, listed once


def test_cli_certs_rerun_adds_a_device(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert main(["certs", "--out", str(out), "--nodes", "1"]) == 0
    ca, old = (out / "ca.key").read_bytes(), (out / "nodes" / "node-001").read_bytes()
    assert main(["certs", "--out", str(out), "--nodes", "2"]) == 0
    assert (out / "ca.key").read_bytes() == ca
    assert (out / "nodes" / "node-001").read_bytes() == old
    assert (out / "nodes" / "node-002.pub").is_file()


def test_app_signing_certificate_is_for_code_signing_only(certs: Path) -> None:
    app = _cert(certs / "app-signing.crt")
    app.verify_directly_issued_by(_cert(certs / "ca.crt"))
    usages = list(app.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert not app.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # ... and the server's TLS certificate is not one.
    server_usages = _cert(certs / "server.crt").extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert ExtendedKeyUsageOID.CODE_SIGNING not in list(server_usages.value)


def test_rerun_keeps_the_app_signing_key_and_adds_a_missing_one(tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    assert main(["certs", "--out", str(out), "--host", "srv.example"]) == 0
    key = (out / "app-signing.key").read_bytes()
    assert main(["certs", "--out", str(out), "--nodes", "1"]) == 0
    assert (out / "app-signing.key").read_bytes() == key
    for name in ("app-signing.key", "app-signing.crt"):  # a folder from before this key
        (out / name).unlink()
    assert main(["certs", "--out", str(out)]) == 0
    assert (out / "app-signing.key").read_bytes() != key
    assert _mode(out / "app-signing.key") == 0o600


def test_rerun_without_host_keeps_the_server_names(tmp_path: Path) -> None:
    """Adding a device must not rename the server (its devices would stop trusting it)."""
    out = tmp_path / "deploy"
    assert main(["certs", "--out", str(out), "--host", "srv.example", "--host", "10.0.0.5"]) == 0
    assert main(["certs", "--out", str(out), "--node", "new-device"]) == 0
    assert certificate_names(_cert(out / "server.crt")) == ["srv.example", "10.0.0.5"]
    assert main(["certs", "--out", str(out), "--host", "other.example"]) == 0
    assert certificate_names(_cert(out / "server.crt")) == ["other.example"]


def test_loopback_tls_is_fresh_and_keeps_no_ca_key(tmp_path: Path) -> None:
    first = make_loopback_tls(tmp_path / "lt")
    crt = (first / "server.crt").read_bytes()
    assert sorted(p.name for p in first.iterdir()) == ["ca.crt", "server.crt", "server.key"]
    assert certificate_names(_cert(first / "server.crt")) == ["localhost", "127.0.0.1"]
    assert _mode(first) == 0o700 and _mode(first / "server.key") == 0o600
    _handshake(first, "localhost")
    assert (make_loopback_tls(tmp_path / "lt") / "server.crt").read_bytes() != crt


def test_cli_certs_requires_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["certs"])
    assert info.value.code == 2
    assert "--out" in capsys.readouterr().err
