"""The only thing of ``fedssl server`` that faces the network: nginx, passing the Fleet API.

Flower 1.42's SuperLink serves the Fleet API (devices), the Control API (submit, list,
stop runs; register devices) and the Runtime API (ServerApp tasks) on one port, and
authenticates no Control or Runtime caller. So the SuperLink listens on 127.0.0.1
only, and nginx listens on the public address: it terminates TLS with the
deployment's server certificate, passes the ten ``POST /v1/fleet/...`` calls a
SuperNode makes (node authentication stays the SuperLink's, end to end: the signed
headers pass unchanged) and answers everything else with 403. It also bounds what
the network can cost the server: body size, header and body timeouts, idle
keep-alive connections.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common.errors import EXIT_BAD_INPUT, FedsslError
from common.processes import Child

# What a SuperNode calls (flwr.supernode.fleet_http_client, Flower 1.42). Not passed:
# register-node and unregister-node (devices are registered by the operator), and
# every /v1/control and /v1/runtime route.
FLEET_ROUTES = (
    "activate-node",
    "deactivate-node",
    "send-node-heartbeat",
    "pull-messages",
    "push-messages",
    "get-run",
    "get-fab",
    "push-object",
    "pull-object",
    "confirm-message-received",
)
# Without node authentication (--insecure) a SuperNode registers itself.
SELF_REGISTRATION_ROUTES = ("register-node", "unregister-node")
# Flower splits arrays into 5 MB chunks (FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE); a FAB is at
# most 10 MB but only ever downloaded. 16 MB leaves room for protobuf framing.
MAX_BODY = "16m"
# Where packages put nginx when PATH (a non-root user's) lacks the sbin folders.
SBIN_NGINX = ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
INSTALL_HINT = (
    "fedssl server puts nginx in front of Flower's SuperLink so that only the device "
    "API faces the network. Install it (Debian/Ubuntu: `sudo apt-get install "
    "nginx-light`; Fedora/RHEL: `sudo dnf install nginx`; macOS: `brew install nginx`) "
    "or give its path with --nginx PATH. fedssl starts and stops its own nginx process; "
    "the system's nginx service need not run."
)


class ProxyError(FedsslError, RuntimeError):
    """nginx's configuration was refused, or it did not start."""


class NginxMissing(ProxyError):
    """nginx is not installed, or --nginx is not it: reported before anything starts."""

    exit_code = EXIT_BAD_INPUT


def find_nginx(explicit: str = "") -> str:
    """The nginx binary: --nginx, else PATH, else the sbin folders PATH often lacks."""
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise NginxMissing(f"--nginx {explicit}: not an executable file. {INSTALL_HINT}")
        return explicit
    found = shutil.which("nginx") or next((p for p in SBIN_NGINX if os.access(p, os.X_OK)), None)
    if not found:
        raise NginxMissing(f"nginx not found. {INSTALL_HINT}")
    return found


@dataclass(frozen=True)
class ProxySettings:
    folder: Path  # configuration and pid file (mode 0700)
    logs: Path
    listen_host: str
    listen_port: int
    upstream_port: int  # the SuperLink on 127.0.0.1
    upstream_ca: Path | None  # None: plaintext to the SuperLink (--insecure)
    upstream_name: str = "localhost"  # the name the SuperLink's loopback certificate holds
    cert: Path | None = None  # the public TLS identity; None: --insecure
    key: Path | None = None


def _listen(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        return f"{port}"
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _worker_user() -> str:
    """Run as root, nginx's workers drop to ``nobody``; otherwise they stay the user."""
    if os.geteuid() != 0:
        return ""
    group = "nogroup" if _group_exists("nogroup") else "nobody"
    return f"user nobody {group};"


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def config_text(s: ProxySettings, tmp: Path) -> str:
    """The whole nginx.conf: one server block, an allow-list of locations, 403 otherwise."""
    tls = s.cert is not None
    scheme = "https" if s.upstream_ca is not None else "http"
    upstream_tls = (
        f"""
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate {s.upstream_ca};
            proxy_ssl_name {s.upstream_name};
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;"""
        if s.upstream_ca is not None
        else ""
    )
    server_tls = (
        f"""
        ssl_certificate {s.cert};
        ssl_certificate_key {s.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:fedssl_tls:1m;"""
        if tls
        else ""
    )
    routes = "|".join(FLEET_ROUTES + (SELF_REGISTRATION_ROUTES if not tls else ()))
    return f"""# Written by fedssl server at every start; edits are lost.
{_worker_user()}
worker_processes 1;
pid {s.folder / "nginx.pid"};
error_log {s.logs / "proxy.log"} warn;
events {{
    worker_connections 4096;
}}
http {{
    log_format fedssl '$remote_addr [$time_iso8601 $msec] "$request" $status '
                      '$body_bytes_sent in $request_length rt=$request_time '
                      'upstream=$upstream_response_time';
    access_log {s.logs / "proxy-access.log"} fedssl;
    server_tokens off;
    client_body_temp_path {tmp / "body"};
    proxy_temp_path {tmp / "proxy"};
    fastcgi_temp_path {tmp / "fastcgi"};
    uwsgi_temp_path {tmp / "uwsgi"};
    scgi_temp_path {tmp / "scgi"};
    client_max_body_size {MAX_BODY};
    client_body_buffer_size 1m;
    client_header_timeout 10s;
    client_body_timeout 20s;
    send_timeout 30s;
    keepalive_timeout 30s;
    keepalive_requests 10000;
    large_client_header_buffers 4 16k;
    upstream superlink {{
        server 127.0.0.1:{s.upstream_port};
        keepalive 16;
    }}
    server {{
        listen {_listen(s.listen_host, s.listen_port)}{" ssl" if tls else ""};{server_tls}
        location ~ ^/v1/fleet/({routes})$ {{
            limit_except POST {{ deny all; }}
            proxy_pass {scheme}://superlink;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_read_timeout 120s;{upstream_tls}
        }}
        location / {{
            return 403;
        }}
    }}
}}
"""


def _temp_folders(s: ProxySettings) -> Path:
    """Where nginx's workers buffer large request bodies. Run as root, the workers are
    ``nobody`` and cannot enter the private state folder, so they get a folder of their
    own (mode 0700, owned by nobody) outside it, as a packaged nginx does under
    /var/lib/nginx; it holds nothing but what devices send the server."""
    if os.geteuid() == 0:
        tmp = Path(tempfile.mkdtemp(prefix="fedssl-nginx-"))
        nobody = pwd.getpwnam("nobody")
        os.chown(tmp, nobody.pw_uid, nobody.pw_gid)
    else:
        tmp = s.folder / "tmp"
        tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
    return tmp


def prepare(s: ProxySettings) -> tuple[Path, Path]:
    """Write the configuration; return it and the workers' temp folder."""
    s.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _temp_folders(s)
    conf = s.folder / "nginx.conf"
    conf.write_text(config_text(s, tmp))
    os.chmod(conf, 0o600)
    return conf, tmp


def check_config(nginx: str, conf: Path, s: ProxySettings) -> None:
    res = subprocess.run(
        [nginx, "-t", "-q", "-c", str(conf), "-p", str(s.folder), "-e", str(s.logs / "proxy.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if res.returncode != 0:
        raise ProxyError(
            f"nginx refused its configuration {conf}: {(res.stderr or res.stdout).strip()}"
        )


def start_proxy(s: ProxySettings, nginx: str, env: dict[str, str]) -> Child:
    """nginx in the foreground, as a child of the daemon (stopped with it)."""
    conf, tmp = prepare(s)
    cleanup = (
        (lambda: shutil.rmtree(tmp, ignore_errors=True))
        if not tmp.is_relative_to(s.folder)
        else None
    )
    try:
        check_config(nginx, conf, s)
    except ProxyError:
        if cleanup is not None:
            cleanup()
        raise
    argv = [nginx, "-c", str(conf), "-p", str(s.folder), "-e", str(s.logs / "proxy.log")]
    argv += ["-g", "daemon off;"]
    return Child(
        "proxy", argv, env=env, log_file=s.logs / "proxy.log", cwd=s.folder, cleanup=cleanup
    )


def wait_listening(child: Child, s: ProxySettings, timeout: float = 20.0) -> None:
    host = "127.0.0.1" if s.listen_host in ("", "0.0.0.0") else s.listen_host
    host = "::1" if host == "::" else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = (s.logs / "proxy.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise ProxyError(
                f"nginx exited with code {child.poll()} on {s.listen_host}:{s.listen_port}: "
                + " | ".join(tail)
            )
        try:
            with socket.create_connection((host, s.listen_port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise ProxyError(f"nginx did not listen on {s.listen_host}:{s.listen_port} in {timeout:.0f} s")
