"""``fedssl server``: the central server daemon of a real deployment.

It starts Flower's SuperLink (TLS and node authentication on unless ``--insecure``,
persistent state, no runtime dependency installation, no telemetry), registers the
devices' public keys, submits the federated SSL run and follows it in the foreground.
SIGTERM or Ctrl-C stops every process it started; since each round is checkpointed,
starting it again with the same ``--out`` resumes after the last recorded round.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from common.atomic import atomic_write_bytes
from common.config import ConfigError, RunConfig, parse_set_items

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_FAILED_ROUNDS = 0, 1, 2, 3
WILDCARDS = ("", "0.0.0.0", "::")
log = logging.getLogger("fedssl.server")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = RunConfig()
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
    r = p.add_argument_group("run (same meaning as in `fedssl simulate`)")
    r.add_argument(
        "--dataset",
        default=d.dataset,
        help="fixes the input shape and the final probe (default: %(default)s)",
    )
    r.add_argument(
        "--clients", type=int, default=0, help="devices to wait for (default: the registered keys)"
    )
    r.add_argument("--rounds", type=int, default=d.num_server_rounds, help="(default: %(default)s)")
    r.add_argument("--method", default=d.method, help="(default: %(default)s)")
    r.add_argument("--fed-algorithm", default=d.fed_algorithm, help="(default: %(default)s)")
    r.add_argument(
        "--local-epochs", type=int, default=d.local_epochs, help="(default: %(default)s)"
    )
    r.add_argument("--batch-size", type=int, default=d.batch_size, help="(default: %(default)s)")
    r.add_argument("--lr", type=float, default=d.learning_rate, help="(default: %(default)s)")
    r.add_argument(
        "--lr-schedule",
        default=d.lr_schedule,
        choices=["constant", "cosine"],
        help="(default: %(default)s)",
    )
    r.add_argument(
        "--num-shares", type=int, default=d.num_shares, help="0 = auto (default: %(default)s)"
    )
    r.add_argument(
        "--reconstruction-threshold",
        type=int,
        default=d.reconstruction_threshold,
        help="0 = auto majority",
    )
    r.add_argument(
        "--device",
        default=d.device,
        help="devices train on: cpu | cuda | auto (default: %(default)s)",
    )
    r.add_argument(
        "--fraction-train", type=float, default=d.fraction_train, help="(default: %(default)s)"
    )
    r.add_argument(
        "--secagg-timeout", type=float, default=d.secagg_timeout, help="(default: %(default)s)"
    )
    r.add_argument(
        "--max-failed-rounds", type=int, default=d.max_failed_rounds, help="(default: %(default)s)"
    )
    r.add_argument("--no-evaluate", action="store_true", help="skip the final linear probe")
    r.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any other run-config key"
    )
    r.add_argument("--out", default="", help="output folder; an unfinished run there is resumed")
    r.add_argument("--seed", type=int, default=d.seed)


def build_config(args: argparse.Namespace, n_keys: int) -> RunConfig:
    flat: dict[str, Any] = {
        **RunConfig().to_flat(),
        "dataset": args.dataset,
        "num-clients": args.clients or n_keys,
        "num-server-rounds": args.rounds,
        "method": args.method,
        "fed-algorithm": args.fed_algorithm,
        "local-epochs": args.local_epochs,
        "fraction-train": args.fraction_train,
        "batch-size": args.batch_size,
        "learning-rate": args.lr,
        "lr-schedule": args.lr_schedule,
        "num-shares": args.num_shares,
        "reconstruction-threshold": args.reconstruction_threshold,
        "device": args.device,
        "secagg-timeout": args.secagg_timeout,
        "max-failed-rounds": args.max_failed_rounds,
        "evaluate": not args.no_evaluate,
        "seed": args.seed,
        "node-data": True,
    }
    flat.update(parse_set_items(args.set))
    cfg = RunConfig.from_flat(flat)
    state = Path(args.state_dir).expanduser().resolve()
    out = Path(args.out).expanduser().resolve() if args.out else _current_out(state)
    cfg = cfg.replace(out_dir=str(out))
    cfg.validate()
    cfg.check_names()
    return cfg


def _current_out(state: Path) -> Path:
    """The unfinished run this daemon was driving, else a new timestamped folder."""
    record = _read_record(state)
    out = Path(str(record.get("out-dir", ""))) if record else None
    if out and (out / "config.json").exists() and not (out / "summary.json").exists():
        return out
    return state / "runs" / time.strftime("run-%Y%m%d-%H%M%S")


def _read_record(state: Path) -> dict[str, Any]:
    path = state / "daemon.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_record(state: Path, **fields: Any) -> None:
    record = {**_read_record(state), **fields}
    atomic_write_bytes(state / "daemon.json", (json.dumps(record, indent=2) + "\n").encode())


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
    from server.cert_check import check_server_certificate

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
    from common.keyfiles import KeyFileError
    from common.logs import setup_logging
    from server.proxy import ProxyError, find_nginx

    setup_logging()
    try:
        find_nginx(args.nginx)  # the only part that faces the network: refuse to start without it
        certs = _check_certs(args)
        keys = _resolve_keys(args, certs)
        cfg = build_config(args, len(keys))
        resume = _prepare_out(cfg)
    except (ConfigError, KeyFileError, ProxyError) as exc:
        print(f"fedssl server: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from server.deployment_run import serve

    return serve(args, cfg.replace(resume=resume), certs, keys)


def _prepare_out(cfg: RunConfig) -> bool:
    """True when ``out-dir`` holds an unfinished run to resume (checked here, before any
    process starts, so a changed config is refused at once)."""
    from server.resume import check_same_run

    out = Path(cfg.out_dir)
    if (out / "summary.json").exists():
        raise ConfigError(f"--out {out} holds a finished run; choose a new folder")
    if not (out / "config.json").exists():
        return False
    saved = json.loads((out / "config.json").read_text())
    probe = cfg.replace(max_weight=saved.get("max-weight", cfg.max_weight))
    check_same_run(saved, probe)
    return True


class StopFlag:
    """Set by SIGTERM / SIGINT; the main loop polls it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()


__all__ = ["StopFlag", "_read_record", "_write_record", "add_arguments", "run"]
