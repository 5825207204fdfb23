"""Where a deployment round's time goes, against the same workload in simulation.

    python -m simulations.bench.deployment --rounds 3

Starts ``fedssl certs``, ``fedssl server`` (TLS, node authentication, SecAgg+) and
three ``fedssl client`` processes on loopback, each device holding a third of sklearn
digits, then runs ``fedssl simulate`` on the same split. Per SecAgg+ stage it reports
how long each ClientApp process took to start (Flower starts one per message), how
long our handler ran (training, masking), and the rest of the round (polling,
transport, server work); then, in both runtimes, what delivering the global encoder
and evaluating it on the devices costs per round, and the bytes each device sends and
receives (replies as recorded on the server, ``FEDSSL_RECORD_DIR``). Prints a table
and writes ``bench-deployment.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

STAGES = ("setup", "share_keys", "collect_masked_vectors", "unmask")
ENV = {
    **os.environ,
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FEDSSL_TORCH_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def _fedssl(
    args: list[str], log: Path, cwd: Path, record: Path | None = None
) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")  # noqa: SIM115 (kept open for the child)
    env = {**ENV, "FEDSSL_RECORD_DIR": str(record)} if record else ENV
    return subprocess.Popen(
        [sys.executable, "-m", "common.cli", *args],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
    )


def wait_for_devices(log: Path, server: subprocess.Popen[bytes], timeout: float) -> None:
    """Until ``fedssl server`` logs that it waits for its devices (or fails to start)."""
    deadline = time.monotonic() + timeout
    while "waiting for" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError(f"server did not start; see {log}")
        time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _split_digits(root: Path, n: int) -> list[Path]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    paths = []
    for i in range(n):
        paths.append(root / f"device-{i}.npz")
        np.savez(paths[-1], x=x[i::n], y=d.target[i::n])
    return paths


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]


def _wait_usage(proc: subprocess.Popen[bytes], timeout: float) -> tuple[float, float]:
    """Reap ``proc``; (CPU seconds of it and every child it reaped, peak RSS in MiB of
    the largest of those processes)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, _, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0
            return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            proc.kill()
            deadline = time.monotonic() + 10
        time.sleep(0.1)


def run_deployment(
    root: Path, rounds: int, devices: int, client_args: list[str] | None = None
) -> dict[str, Any]:
    from server.deployment.certs import make_certs

    names = [f"node-{i:03d}" for i in range(1, devices + 1)]
    certs = make_certs(root / "certs", nodes=names)
    data = _split_digits(root, devices)
    port = _free_port()
    out = root / "deploy-out"
    server = _fedssl(
        ["server", "--certs", str(certs), "--port", str(port), "--state-dir", str(root / "srv"),
         "--dataset", "digits", "--no-evaluate", "--rounds", str(rounds), "--out", str(out),
         "--clients", str(devices)],
        root / "server.log",
        root,
        record=root / "rec-deploy",
    )  # fmt: skip
    wait_for_devices(root / "server.log", server, 120)
    t0 = time.perf_counter()
    clients = [
        _fedssl(
            ["client", "--server", f"127.0.0.1:{port}", "--data", str(data[i]),
             "--key", str(certs / "nodes" / names[i]), "--ca", str(certs / "ca.crt"),
             "--state-dir", str(root / f"client{i}"), *(client_args or [])],
            root / f"client{i}.log",
            root,
        )
        for i in range(devices)
    ]  # fmt: skip
    usage = []
    try:
        rc = server.wait(1800)
    finally:
        for c in clients:  # os.kill, not send_signal: that would reap it (and its usage)
            os.kill(c.pid, signal.SIGTERM)
        for c in clients:
            usage.append(_wait_usage(c, 60))
    if rc != 0:
        raise RuntimeError(f"server exited {rc}; see {root / 'server.log'}")
    timing = [
        json.loads(line)
        for i in range(devices)
        for line in (root / f"client{i}" / "timing.jsonl").read_text().splitlines()
    ]
    rows, wall = _rows(out), time.perf_counter() - t0
    device = {
        # everything a device ran (SuperNode, SuperExec, every task and spare process),
        # start-up and federated evaluation included, spread over the training rounds
        "cpu_s_per_round": statistics.mean(cpu for cpu, _ in usage) / rounds,
        "peak_rss_mib": max(rss for _, rss in usage),
    }
    return {
        "rows": rows,
        "timing": timing,
        "wall_s": wall,
        "device": device,
        **_evaluation(out, rows, root / "rec-deploy"),
    }


def run_simulation(root: Path, rounds: int, devices: int) -> dict[str, Any]:
    out = root / "sim-out"
    t0 = time.perf_counter()
    proc = _fedssl(
        ["simulate", "--dataset", "digits", "--clients", str(devices), "--partition", "iid",
         "--rounds", str(rounds), "--no-evaluate", "--out", str(out)],
        root / "simulate.log",
        root,
        record=root / "rec-sim",
    )  # fmt: skip
    if proc.wait(1800) != 0:
        raise RuntimeError(f"simulation failed; see {root / 'simulate.log'}")
    rows, wall = _rows(out), time.perf_counter() - t0
    return {"rows": rows, "wall_s": wall, **_evaluation(out, rows, root / "rec-sim")}


def _evaluation(out: Path, rows: list[dict[str, Any]], record: Path) -> dict[str, Any]:
    """Delivery + evaluation seconds per round (round 0: the random-init encoder) and the
    bytes per device and round, as the server's rows and recorder saw them."""
    initial = json.loads((out / "summary.json").read_text())["federated_evaluation_initial"]
    per_round = [r["federated_evaluation"] for r in rows if r.get("federated_evaluation")]
    return {
        "evaluation_s": [initial["seconds"]] + [e["seconds"] for e in per_round],
        "bytes_per_device": {
            "train_download": rows[0]["download_bytes_per_client"],
            "train_upload_computed": rows[0]["upload_bytes_per_client"],
            "delivery_download": per_round[0]["bytes_per_device"],
            **_reply_bytes(record / "server"),
        },
    }


def _reply_bytes(folder: Path) -> dict[str, float]:
    """Mean bytes of the replies one device sends in one round: training (all SecAgg+
    stages together) and evaluation, from the recorded wire content."""
    from flwr.common.serde import ProtoRecordDict, recorddict_from_proto

    from common.messages import EVAL_RESULT

    sums: dict[tuple[str, str, str], int] = {}
    for path in folder.glob("round-*-node-*.pb"):
        _, rnd, _, node, _ = path.stem.split("-")
        content = recorddict_from_proto(ProtoRecordDict.FromString(path.read_bytes()))
        kind = "evaluate" if EVAL_RESULT in content.config_records else "train"
        key = (kind, rnd, node)
        sums[key] = sums.get(key, 0) + path.stat().st_size
    out = {}
    for kind in ("train", "evaluate"):
        sizes = [v for (k, rnd, _), v in sums.items() if k == kind and rnd != "0"]
        out[f"{kind}_upload_recorded"] = statistics.mean(sizes) if sizes else 0.0
    return out


def breakdown(dep: dict[str, Any]) -> dict[str, Any]:
    rounds = [r["seconds"] for r in dep["rows"]]
    per_stage = {}
    for stage in (*STAGES, "evaluate"):
        rows = [t for t in dep["timing"] if t["stage"] == stage]
        if not rows:
            continue
        per_stage[stage] = {
            "startup_s": statistics.mean(
                t["startup_s"] for t in rows if t["startup_s"] is not None
            ),
            "handler_s": statistics.mean(t["handler_s"] for t in rows),
            "task_cpu_s": statistics.mean(t.get("cpu_s", 0.0) for t in rows),
        }
    startup = sum(v["startup_s"] for k, v in per_stage.items() if k in STAGES)
    handler = sum(v["handler_s"] for k, v in per_stage.items() if k in STAGES)
    mean_round = statistics.mean(rounds[1:] if len(rounds) > 1 else rounds)
    return {
        "round_s": rounds,
        "mean_round_s": mean_round,
        "stages": per_stage,
        "clientapp_startup_s": startup,
        "handler_s": handler,
        "polling_transport_server_s": mean_round - startup - handler,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--devices", type=int, default=3)
    p.add_argument(
        "--client-args",
        default="",
        help='extra `fedssl client` arguments, e.g. "--poll-interval 3 --cold-start" '
        "(Flower's own polling and process start-up)",
    )
    p.add_argument(
        "--out", default="", help="folder for logs and bench-deployment.json (default: a temp dir)"
    )
    args = p.parse_args(argv)
    root = Path(args.out or tempfile.mkdtemp(prefix="fedssl-bench-deploy-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(f"logs in {root}", flush=True)
    dep = run_deployment(root, args.rounds, args.devices, args.client_args.split())
    sim = run_simulation(root, args.rounds, args.devices)
    b = breakdown(dep)
    sim_rounds = [r["seconds"] for r in sim["rows"]]
    sim_mean = statistics.mean(sim_rounds[1:] if len(sim_rounds) > 1 else sim_rounds)
    result = {
        "deployment": {**b, "evaluation_s": dep["evaluation_s"], "bytes": dep["bytes_per_device"],
                       "device": dep["device"], "client_args": args.client_args},
        "simulation": {"round_s": sim_rounds, "mean_round_s": sim_mean,
                       "evaluation_s": sim["evaluation_s"], "bytes": sim["bytes_per_device"]},
    }  # fmt: skip
    (root / "bench-deployment.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n{args.devices} devices, digits, SecAgg+, {args.rounds} rounds (means exclude round 1)"
    )
    print(
        f"  deployment (TLS + node auth, loopback): {b['mean_round_s']:.1f} s per round  {b['round_s']}"
    )
    print(f"  simulation (in-process, Ray):          {sim_mean:.1f} s per round  {sim_rounds}")
    print(f"  ratio: {b['mean_round_s'] / sim_mean:.1f}x\n")
    print("  per stage, mean over devices   ClientApp start-up   our handler   task CPU")
    for stage, v in b["stages"].items():
        print(f"    {stage:<24}      {v['startup_s']:6.2f} s          {v['handler_s']:6.2f} s"
              f"     {v['task_cpu_s']:6.2f} s")  # fmt: skip
    print("  (evaluate: the delivery of each round's encoder, after the round)")
    print(f"  round = start-up {b['clientapp_startup_s']:.1f} s + handlers {b['handler_s']:.1f} s "
          f"+ polling/transport/server {b['polling_transport_server_s']:.1f} s")  # fmt: skip
    print(f"  device: {dep['device']['cpu_s_per_round']:.1f} CPU-seconds per round (every "
          f"process, evaluation included), peak RSS {dep['device']['peak_rss_mib']:.0f} MiB "
          f"(largest process)")  # fmt: skip
    requests = _proxy_requests(root / "srv" / "logs" / "proxy-access.log")
    print(f"  proxy: {sum(requests.values()) / args.rounds:.0f} device requests per round "
          f"(pull-object {requests.get('pull-object', 0) / args.rounds:.0f}), "
          "evaluation included")  # fmt: skip
    _print_evaluation(dep, sim)
    return 0


def _proxy_requests(access_log: Path) -> dict[str, int]:
    """Requests per Fleet API route over the whole run, from the proxy's access log."""
    counts: dict[str, int] = {}
    for line in access_log.read_text().splitlines():
        route = line.partition("/v1/fleet/")[2].split(" ", 1)[0]
        if route:
            counts[route] = counts.get(route, 0) + 1
    return counts


def _print_evaluation(dep: dict[str, Any], sim: dict[str, Any]) -> None:
    print("\n  delivery + evaluation on the devices, per round (round 0 = random init):")
    for name, res in (("deployment", dep), ("simulation", sim)):
        secs = res["evaluation_s"]
        print(f"    {name:<11} {statistics.mean(secs[1:]):5.1f} s   {secs}")
    print("  bytes per device per round (deployment):")
    for key, value in dep["bytes_per_device"].items():
        print(f"    {key:<22} {value:>12,.0f}")


if __name__ == "__main__":
    sys.exit(main())
