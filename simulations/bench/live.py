"""Live devices in a real loopback deployment: decisions, swaps, latency and reward per round.

    python -m simulations.bench.live --quick --out runs/live      # 3 HAPT users, 2 rounds
    python -m simulations.bench.live --out runs/live              # 21 streaming + 9 unseen

Starts ``fedssl server`` (TLS, node authentication, SecAgg+) and one ``fedssl client
--stream npz:USER.npz`` per HAPT user, each replaying that user's labeled windows in
time order at ``--pace`` windows per second: the devices decide on their stream with
each delivered global encoder (round 0 is the random-init encoder) while they train on
what they stored. In the full run, HAPT's 9 unseen users (22-30) are evaluation-only
devices that stream too. Writes ``OUT/live.json``:

- ``devices``, ``rounds_completed``, ``decisions``, ``missed_decisions`` (windows that
  arrived after a device could decide and got no decision), ``swaps``;
- ``decision_p99_ms``: ``idle`` and ``training`` (a decision counts as ``training``
  when its device was running a training task at the time, from its timing rows);
- ``reward_rate_initial`` (decisions with the round-0 encoder), ``reward_rate_final``
  (with the last encoder swapped in), ``reward_rate_by_round`` (per encoder round);
- ``store_windows``, ``store_bytes``, ``swap_ms`` (on the deciding thread),

and ``reward_rate.png`` and ``decision_p99.png`` (per encoder round).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from simulations.bench.deployment import _fedssl, _free_port

TRAIN_USERS, UNSEEN_USERS = tuple(range(1, 22)), tuple(range(22, 31))
QUICK_USERS = (1, 2, 3)


def write_user_streams(root: Path, users: tuple[int, ...]) -> dict[int, Path]:
    """One .npz per HAPT user: its labeled windows in time order."""
    from simulations.device_replay.streams import load_streams

    logging.getLogger("fedssl").setLevel(logging.ERROR)  # "a pretraining user" notes
    paths = {}
    for user, stream in zip(users, load_streams("hapt", list(users)), strict=True):
        paths[user] = root / f"user-{user:02d}.npz"
        np.savez(paths[user], x=stream.x, y=stream.y)
    return paths


def run(
    root: Path, users: tuple[int, ...], unseen: tuple[int, ...], rounds: int, pace: float
) -> int:
    from server.deployment.certs import make_certs

    devices = users + unseen
    names = [f"user-{u:02d}" for u in devices]
    certs = make_certs(root / "certs", nodes=names)
    streams = write_user_streams(root, devices)
    port = _free_port()
    server = _fedssl(
        ["server", "--certs", str(certs), "--port", str(port), "--state-dir", str(root / "srv"),
         "--dataset", "hapt", "--no-evaluate", "--rounds", str(rounds), "--out", str(root / "out"),
         "--clients", str(len(users)), "--set", "eval-clients=" + str(len(unseen))],
        root / "server.log",
        root,
    )  # fmt: skip
    _wait_for_text(root / "server.log", "waiting for", server, 180)
    clients = []
    for user, name in zip(devices, names, strict=True):
        extra = ["--evaluate-only"] if user in unseen else []
        clients.append(
            _fedssl(
                [
                    "client",
                    "--server",
                    f"127.0.0.1:{port}",
                    "--stream",
                    f"npz:{streams[user]}",
                    "--pace",
                    str(pace),
                    "--actions",
                    "6",
                    "--key",
                    str(certs / "nodes" / name),
                    "--ca",
                    str(certs / "ca.crt"),
                    "--state-dir",
                    str(root / name),
                    *extra,
                ],
                root / f"{name}.log",
                root,
            )  # fmt: skip
        )
    rc = server.wait(3600)
    for c in clients:
        c.wait(120)
    return rc


def _wait_for_text(log: Path, text: str, proc: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"server did not start; see {log}")
        time.sleep(0.5)


def _training_spans(state: Path) -> list[tuple[float, float]]:
    """When the device ran its training tasks (wall clock)."""
    spans = []
    for line in (state / "timing.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["stage"] in ("collect_masked_vectors", "train"):
            end = row["time"]
            spans.append((end - row["handler_s"] - (row.get("startup_s") or 0.0), end))
    return spans


def summarize(root: Path, names: list[str]) -> dict[str, Any]:
    decisions: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    for name in names:
        state = root / name
        rows = [json.loads(x) for x in (state / "decisions.jsonl").read_text().splitlines()]
        spans = _training_spans(state) if (state / "timing.jsonl").exists() else []
        for r in rows:
            r["training"] = any(a <= r["time"] <= b for a, b in spans)
        decisions += rows
        counts.append(json.loads((state / "agent" / "counts.json").read_text()))
    metrics = [json.loads(x) for x in (root / "out" / "metrics.jsonl").read_text().splitlines()]
    by_round = _by_round(decisions)
    lat = {
        k: [d["latency_ms"] for d in decisions if d["training"] == (k == "training")]
        for k in ("idle", "training")
    }
    return {
        "devices": len(names),
        "rounds_completed": sum(1 for m in metrics if m.get("completed")),
        "decisions": len(decisions),
        "missed_decisions": sum(c["missed"] for c in counts),
        "swaps": sum(c["swaps"] for c in counts),
        "decision_p99_ms": {k: _p(v, 99) for k, v in lat.items()},
        "decision_p50_ms": {k: _p(v, 50) for k, v in lat.items()},
        "decision_max_ms": {k: max(v) if v else None for k, v in lat.items()},
        "reward_rate_initial": by_round[0]["reward_rate"] if 0 in by_round else None,
        "reward_rate_final": by_round[max(by_round)]["reward_rate"] if by_round else None,
        "reward_rate_by_round": [by_round[r]["reward_rate"] for r in sorted(by_round)],
        "p99_ms_by_round": [by_round[r]["p99_ms"] for r in sorted(by_round)],
        "store_windows": sum(c["store_windows"] for c in counts),
        "store_bytes": sum(c["store_bytes"] for c in counts),
        "swap_ms": [ms for c in counts for ms in c["swap_ms"]],
        "bad_frames": sum(c["bad_frames"] for c in counts),
    }


def _p(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _by_round(decisions: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for rnd in sorted({d["encoder_round"] for d in decisions}):
        mine = [d for d in decisions if d["encoder_round"] == rnd]
        rewarded = [d["reward"] for d in mine if d["reward"] is not None]
        out[rnd] = {
            "reward_rate": float(np.mean(rewarded)) if rewarded else None,
            "p99_ms": _p([d["latency_ms"] for d in mine], 99),
            "decisions": len(mine),
        }
    return out


def plot(result: dict[str, Any], out: Path) -> None:
    from common.plots import plot_series

    x = "global encoder round (0: random init)"
    title = f"{result['devices']} live devices"
    plot_series(result["reward_rate_by_round"], out / "reward_rate.png", x, "reward rate", title)
    plot_series(result["p99_ms_by_round"], out / "decision_p99.png", x, "decision p99 (ms)", title)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="3 streaming users, 2 rounds")
    p.add_argument("--rounds", type=int, default=0, help="default: 2 quick, 5 full")
    p.add_argument("--pace", type=float, default=5.0, help="windows per second per device")
    p.add_argument("--out", default="", help="folder (default: a temp dir)")
    args = p.parse_args(argv)
    root = Path(args.out or tempfile.mkdtemp(prefix="fedssl-bench-live-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    users, unseen = (QUICK_USERS, ()) if args.quick else (TRAIN_USERS, UNSEEN_USERS)
    rounds = args.rounds or (2 if args.quick else 5)
    print(f"logs in {root}", flush=True)
    rc = run(root, users, unseen, rounds, args.pace)
    if rc != 0:
        print(f"the server exited with code {rc}; see {root / 'server.log'}")
        return 1
    result = summarize(root, [f"user-{u:02d}" for u in users + unseen])
    (root / "live.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, root)
    print(json.dumps({k: v for k, v in result.items() if k != "swap_ms"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
