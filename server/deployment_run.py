"""The body of ``fedssl server``: SuperLink up, devices registered, run submitted and
followed until it ends or the daemon is told to stop."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
from pathlib import Path

from common.config import RunConfig
from common.processes import Child
from server.app_bundle import build_app_dir
from server.daemon import (
    EXIT_ERROR,
    EXIT_FAILED_ROUNDS,
    EXIT_OK,
    StopFlag,
    _read_record,
    _write_record,
)
from server.superlink import (
    CONNECTION,
    DeploymentError,
    LinkSettings,
    child_env,
    flwr_bin,
    list_nodes,
    register_node,
    start_superlink,
    stop_run,
    wait_until_up,
)

log = logging.getLogger("fedssl.server")
RUN_STARTED = re.compile(r"Successfully started run (\d+)")


def run_config_arg(cfg: RunConfig) -> str:
    """``--run-config`` text: every key, strings single-quoted (TOML literal strings)."""
    parts = []
    for key, value in cfg.to_flat().items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            if "'" in str(value):
                raise DeploymentError(f"{key}: a value may not contain a single quote: {value!r}")
            text = f"'{value}'"
        parts.append(f"{key}={text}")
    return " ".join(parts)


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
    state = Path(args.state_dir).expanduser().resolve()
    state.mkdir(parents=True, exist_ok=True)
    database = (
        Path(args.database).expanduser().resolve() if args.database else state / "superlink.db"
    )
    s = LinkSettings(
        state_dir=state, host=args.host, port=args.port, database=database, certs=certs
    )
    stop = StopFlag()
    stop.install()
    link: Child | None = None
    runner: Child | None = None
    watcher_stop = threading.Event()
    try:
        link = start_superlink(s)
        wait_until_up(s, link)
        names = _register(s, keys)
        old = _read_record(state)
        if old.get("status") == "running" and old.get("run-id"):
            stop_run(s, str(old["run-id"]))  # its ServerApp died with the old daemon
        threading.Thread(target=_watch_nodes, args=(s, names, watcher_stop), daemon=True).start()
        app_dir = build_app_dir(state / "app")
        verb = "resuming" if cfg.resume else "starting"
        log.info("%s run in %s: waiting for %d devices", verb, cfg.out_dir, cfg.num_clients)
        _write_record(state, **{"out-dir": cfg.out_dir, "status": "running", "run-id": ""})

        def on_line(line: str) -> None:
            m = RUN_STARTED.search(line)
            if m:
                _write_record(state, **{"run-id": m.group(1)})
                log.info("Flower run %s submitted", m.group(1))
            elif "fedssl" in line or "ERROR" in line:
                print(line, file=sys.stderr, flush=True)

        runner = Child(
            "flwr-run",
            [
                flwr_bin("flwr"),
                "run",
                str(app_dir),
                CONNECTION,
                "--stream",
                "--run-config",
                run_config_arg(cfg),
            ],
            env=child_env(s.flwr_home),
            log_file=state / "logs" / "run.log",
            on_line=on_line,
            cwd=state,
        )
        while runner.poll() is None and link.poll() is None and not stop.event.is_set():
            stop.event.wait(1.0)
        if stop.event.is_set():
            log.info(
                "%s: stopping; start `fedssl server` again with the same --out to resume",
                stop.signal_name,
            )
            _write_record(state, status="interrupted")
            return EXIT_OK
        if link.poll() is not None:
            raise DeploymentError(
                f"the SuperLink exited with code {link.poll()}; see {state / 'logs'}"
            )
        return _finish(state, Path(cfg.out_dir))
    except DeploymentError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    finally:
        watcher_stop.set()
        for child in (runner, link):
            if child is not None:
                child.stop()


def _finish(state: Path, out: Path) -> int:
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        _write_record(state, status="error")
        log.error("the run ended without a summary; see %s", state / "logs" / "run.log")
        return EXIT_ERROR
    summary = json.loads(summary_path.read_text())
    _write_record(state, status=summary["status"])
    probe = summary.get("linear_probe", {}).get("federated")
    log.info(
        "run %s: %d rounds completed, %d failed%s; outputs in %s",
        summary["status"],
        summary["rounds_completed"],
        summary["rounds_failed"],
        f", linear probe {probe['accuracy']:.1%}" if probe else "",
        out,
    )
    return EXIT_OK if summary["status"] == "completed" else EXIT_FAILED_ROUNDS
