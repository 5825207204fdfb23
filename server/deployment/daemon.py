"""``fedssl server``: the central server daemon of a real deployment (its options and the
checks made before anything starts; ``server.deployment.serve`` runs it).

It starts Flower's SuperLink on loopback, fedssl's SuperExec and nginx on the public
address (TLS and node authentication on unless ``--insecure``), registers the
devices' public keys, submits the signed federated SSL run and follows it.
SIGTERM or Ctrl-C stops every process it started; since each round is checkpointed,
starting it again with the same ``--out`` resumes after the last recorded round.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from common.config import ConfigError, RunConfig
from common.config_checks import check_names
from common.run_options import add_run_options, config_from_args
from server.deployment.records import read_record

WILDCARDS = ("", "0.0.0.0", "::")
log = logging.getLogger("fedssl.server")


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("deployment")
    g.add_argument(
        "--certs", default="", help="folder made by `fedssl certs` (required unless --insecure)"
    )
    g.add_argument(
        "--insecure",
        action="store_true",
        help="plaintext, no node authentication: for a trusted lab network only",
    )
    g.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on; 0.0.0.0 for all (default: %(default)s)",
    )
    g.add_argument(
        "--port",
        type=int,
        default=9092,
        help="the devices' port: nginx passes Flower's device (Fleet) API only; the "
        "SuperLink itself listens on 127.0.0.1 (default: %(default)s)",
    )
    g.add_argument(
        "--public-address",
        default="",
        help="the host name or IP address devices connect to; the server certificate must "
        "name it (default: --host, unless that is 0.0.0.0 or ::)",
    )
    g.add_argument(
        "--nginx",
        default="",
        metavar="PATH",
        help="the nginx binary (default: nginx on PATH, /usr/sbin/nginx)",
    )
    g.add_argument(
        "--state-dir",
        default="fedssl-server",
        help="SuperLink database, logs, node ids (default: %(default)s)",
    )
    g.add_argument(
        "--database", default="", help="SuperLink state file (default: STATE_DIR/superlink.db)"
    )
    g.add_argument(
        "--register",
        action="append",
        default=[],
        metavar="KEY.pub",
        help="a device public key to register (repeat; default: every CERTS/nodes/*.pub)",
    )
    add_run_options(p, exclude=("partition",))  # devices bring their own data
    r = p.add_argument_group("run")
    r.add_argument("--out", default="", help="output folder; an unfinished run there is resumed")


def build_config(args: argparse.Namespace, n_keys: int) -> RunConfig:
    """The run's config: devices bring their own data, and by default the server waits
    for every registered key (``--clients 0`` means the same)."""
    if getattr(args, "run.num-clients", None) == 0:
        delattr(args, "run.num-clients")
    cfg = config_from_args(args, {"node-data": True, "num-clients": n_keys}, set_items=args.set)
    state = Path(args.state_dir).expanduser().resolve()
    out = Path(args.out).expanduser().resolve() if args.out else _current_out(state)
    cfg = cfg.replace(out_dir=str(out))
    check_names(cfg)
    return cfg


def _current_out(state: Path) -> Path:
    """The unfinished run this daemon was driving, else a new timestamped folder."""
    record = read_record(state)
    out = Path(str(record.get("out-dir", ""))) if record else None
    if out and (out / "config.json").exists() and not (out / "summary.json").exists():
        return out
    return state / "runs" / time.strftime("run-%Y%m%d-%H%M%S")


def _resolve_keys(args: argparse.Namespace, certs: Path | None) -> list[Path]:
    keys = [Path(k).expanduser().resolve() for k in args.register]
    if not keys and certs is not None:
        keys = sorted((certs / "nodes").glob("*.pub"))
    missing = [str(k) for k in keys if not k.is_file()]
    if missing:
        raise ConfigError(f"--register: no such public key file: {', '.join(missing)}")
    return keys


def _check_certs(args: argparse.Namespace) -> Path | None:
    from common.keyfiles import check_private_key_file
    from server.deployment.cert_check import check_server_certificate

    if args.insecure:
        log.warning(
            "!!! --insecure: TLS and node authentication are OFF. Anyone who can reach port "
            "%d can read the traffic, join the federation or submit runs. Lab use only. !!!",
            args.port,
        )
        return None
    if not args.certs:
        raise ConfigError(
            "--certs DIR is required (make one with `fedssl certs --out DIR`), or pass --insecure"
        )
    certs = Path(args.certs).expanduser().resolve()
    for name in ("ca.crt", "server.crt", "app-signing.crt"):
        if not (certs / name).is_file():
            raise ConfigError(
                f"--certs: {certs / name} is missing (run `fedssl certs --out {certs}` again: "
                "it adds what is missing and keeps the CA, the server names and device keys)"
            )
    check_private_key_file(certs / "server.key")
    check_private_key_file(certs / "app-signing.key")
    public = args.public_address or ("" if args.host in WILDCARDS else args.host)
    check_server_certificate(certs, public)
    return certs


def run(args: argparse.Namespace) -> int:
    """Check everything that can be checked, then serve; errors rise to the CLI (exit 2)."""
    from common.logs import setup_logging
    from server.deployment.proxy import find_nginx

    setup_logging()
    find_nginx(args.nginx)  # the only part that faces the network: refuse to start without it
    certs = _check_certs(args)
    keys = _resolve_keys(args, certs)
    cfg = build_config(args, len(keys))
    resume = _prepare_out(cfg)
    from server.deployment.serve import serve

    return serve(args, cfg.replace(resume=resume), certs, keys)


def _prepare_out(cfg: RunConfig) -> bool:
    """True when ``out-dir`` holds an unfinished run to resume (checked here, before any
    process starts, so a changed config is refused at once)."""
    from server.resume import check_same_run, unfinished_run_config

    saved = unfinished_run_config(Path(cfg.out_dir))
    if saved is None:
        return False
    probe = cfg.replace(max_weight=saved.get("max-weight", cfg.max_weight))
    check_same_run(saved, probe)
    return True
