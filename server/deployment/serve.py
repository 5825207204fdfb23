"""The body of ``fedssl server``: the SuperLink and its SuperExec on loopback, the proxy
on the public address, devices registered, the signed run submitted and followed until
it ends or the daemon is told to stop; then every process it started is stopped."""

from __future__ import annotations

import argparse
import json
import logging
import re
import secrets
import socket
import sys
import threading
from pathlib import Path

from common.app_signing import APP_SIGNATURE_KEY, fab_digest
from common.config import RunConfig
from common.errors import EXIT_ERROR, EXIT_FAILED_ROUNDS, EXIT_OK
from common.private_files import private_tree, write_secret
from common.processes import Child, StopFlag
from server.deployment.app_bundle import build_app_dir, build_fab, sign_app
from server.deployment.certs import LOOPBACK_NAME, make_loopback_tls
from server.deployment.proxy import (
    ProxyError,
    ProxySettings,
    find_nginx,
    start_proxy,
    wait_listening,
)
from server.deployment.records import read_record, write_record
from server.deployment.superlink import (
    CONNECTION,
    DeploymentError,
    LinkSettings,
    child_env,
    flwr_bin,
    list_nodes,
    register_node,
    start_superexec,
    start_superlink,
    stop_run,
    wait_until_up,
)
from server.fed_eval_summary import final_line

log = logging.getLogger("fedssl.server")
RUN_STARTED = re.compile(r"Successfully started run (\d+)")


def _register(s: LinkSettings, keys: list[Path]) -> dict[str, str]:
    """Register every key; remember name -> node id across restarts (nodes.json)."""
    path = s.state_dir / "nodes.json"
    names: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
    for key in keys:
        node_id = register_node(s, key)
        name = key.name.removesuffix(".pub")
        if node_id:
            names[name] = node_id
            log.info("registered device %s as node %s", name, node_id)
        else:
            log.info("device %s already registered (node %s)", name, names.get(name, "?"))
    path.write_text(json.dumps(names, indent=2) + "\n")
    return names


def _watch_nodes(s: LinkSettings, names: dict[str, str], stop: threading.Event) -> None:
    """Log each device going online or offline, by name."""
    by_id = {v: k for k, v in names.items()}
    last: dict[str, str] = {}
    while not stop.wait(10.0):
        try:
            nodes = list_nodes(s)
        except Exception:  # the link may be restarting; try again later
            continue
        for node in nodes:
            nid, status = str(node.get("node-id")), str(node.get("status"))
            if last.get(nid) != status:
                log.info("device %s (node %s) is %s", by_id.get(nid, "?"), nid, status)
                last[nid] = status


def serve(args: argparse.Namespace, cfg: RunConfig, certs: Path | None, keys: list[Path]) -> int:
    state = private_tree(Path(args.state_dir).expanduser().resolve())
    private_tree(Path(cfg.out_dir))
    s = _link_settings(args, state, certs)
    stop = StopFlag()
    stop.install()
    children: list[Child] = []
    watcher_stop = threading.Event()
    try:
        link = _started(children, start_superlink(s))
        wait_until_up(s, link)
        _started(children, start_superexec(s))
        _started(children, _start_public_proxy(args, s, certs))
        names = _register(s, keys)
        old = read_record(state)
        if old.get("status") == "running" and old.get("run-id"):
            stop_run(s, str(old["run-id"]))  # its ServerApp died with the old daemon
        threading.Thread(target=_watch_nodes, args=(s, names, watcher_stop), daemon=True).start()
        runner = _started(children, _submit(s, cfg, certs))
        return _follow(s, cfg, children, runner, stop)
    except (DeploymentError, ProxyError) as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    finally:
        watcher_stop.set()
        for child in reversed(children):  # the run, the proxy, the SuperExec, the SuperLink
            child.stop()


def _started(children: list[Child], child: Child) -> Child:
    children.append(child)
    return child


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _link_settings(args: argparse.Namespace, state: Path, certs: Path | None) -> LinkSettings:
    """The SuperLink on an ephemeral loopback port; a fresh loopback certificate and
    SuperExec secret at every start."""
    database = (
        Path(args.database).expanduser().resolve() if args.database else state / "superlink.db"
    )
    return LinkSettings(
        state_dir=state,
        port=_free_loopback_port(),
        database=database,
        loopback_tls=make_loopback_tls(state / "loopback-tls") if certs is not None else None,
        secret=write_secret(state / "superexec.secret", secrets.token_hex(32)),
    )


def _start_public_proxy(args: argparse.Namespace, s: LinkSettings, certs: Path | None) -> Child:
    settings = ProxySettings(
        folder=s.state_dir / "proxy",
        logs=s.logs,
        listen_host=args.host,
        listen_port=args.port,
        upstream_port=s.port,
        upstream_ca=s.loopback_tls / "ca.crt" if s.loopback_tls else None,
        upstream_name=LOOPBACK_NAME,
        cert=certs / "server.crt" if certs else None,
        key=certs / "server.key" if certs else None,
    )
    child = start_proxy(settings, find_nginx(args.nginx), child_env(s.flwr_home))
    wait_listening(child, settings)
    log.info(
        "listening on %s:%d for devices (nginx pid %d passes the device API only; "
        "everything else is refused)",
        args.host,
        args.port,
        child.pid,
    )
    return child


def _submit(s: LinkSettings, cfg: RunConfig, certs: Path | None) -> Child:
    """Build the app with the run's config inside, sign it, and ``flwr run`` it."""
    app_dir = build_app_dir(s.state_dir / "app", cfg)
    env = child_env(s.flwr_home)
    fab = build_fab(app_dir, flwr_bin("flwr"), env)
    s.allowed_app.write_text(fab_digest(fab) + "\n")  # the one bundle the SuperExec runs
    run_config = ""
    if certs is not None:
        run_config = f"{APP_SIGNATURE_KEY}='{sign_app(fab, certs)}'"
        log.info("app bundle %s signed with %s", fab_digest(fab)[:12], certs / "app-signing.key")
    verb = "resuming" if cfg.resume else "starting"
    log.info("%s run in %s: waiting for %d devices", verb, cfg.out_dir, cfg.num_clients)
    write_record(s.state_dir, **{"out-dir": cfg.out_dir, "status": "running", "run-id": ""})

    def on_line(line: str) -> None:
        m = RUN_STARTED.search(line)
        if m:
            write_record(s.state_dir, **{"run-id": m.group(1)})
            log.info("Flower run %s submitted", m.group(1))
        elif "fedssl" in line or "ERROR" in line:
            print(line, file=sys.stderr, flush=True)

    argv = [flwr_bin("flwr"), "run", str(app_dir), CONNECTION, "--stream"]
    if run_config:
        argv += ["--run-config", run_config]
    return Child(
        "flwr-run", argv, env=env, log_file=s.logs / "run.log", on_line=on_line, cwd=s.state_dir
    )


def _follow(
    s: LinkSettings, cfg: RunConfig, children: list[Child], runner: Child, stop: StopFlag
) -> int:
    """Wait for the run to end, a child to die, or a stop signal."""
    while runner.poll() is None and not stop.event.is_set():
        dead = [c for c in children if c is not runner and c.poll() is not None]
        if dead:
            raise DeploymentError(
                f"the {dead[0].name} exited with code {dead[0].poll()}; see {s.logs}"
            )
        stop.event.wait(1.0)
    if stop.event.is_set():
        log.info(
            "%s: stopping; start `fedssl server` again with the same --out to resume",
            stop.signal_name,
        )
        write_record(s.state_dir, status="interrupted")
        return EXIT_OK
    return _finish(s.state_dir, Path(cfg.out_dir))


def _finish(state: Path, out: Path) -> int:
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        write_record(state, status="error")
        log.error("the run ended without a summary; see %s", state / "logs" / "run.log")
        return EXIT_ERROR
    summary = json.loads(summary_path.read_text())
    write_record(state, status=summary["status"])
    probe = summary.get("linear_probe", {}).get("federated")
    log.info(
        "run %s: %d rounds completed, %d failed%s; outputs in %s",
        summary["status"],
        summary["rounds_completed"],
        summary["rounds_failed"],
        f", linear probe {probe['accuracy']:.1%}" if probe else "",
        out,
    )
    evaluated = final_line(summary)
    if evaluated:
        log.info("%s", evaluated)
    return EXIT_OK if summary["status"] == "completed" else EXIT_FAILED_ROUNDS
