"""Live devices in a real loopback deployment: decisions, swaps, latency and reward per round.

    python -m simulations.bench.live --quick --out runs/live      # 3 HAPT users, 2 rounds
    python -m simulations.bench.live --out runs/live              # 21 streaming + 9 unseen
    python -m simulations.bench.live --train-users 6 --unseen-users 2 --kill-one --out DIR

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
- ``store_windows``, ``store_bytes``, ``swap_ms`` (on the deciding thread);
- ``baseline_reward_rate_by_round``: ``random-init`` and ``raw``, the same streams
  replayed offline under the round-0 encoder kept throughout and under raw features,
  scored on the windows the live devices decided in each round
  (``simulations.bench.live_baselines``);
- with ``--kill-one``, ``sigkill``: the first device's client is SIGKILLed once it
  decides with a federated encoder, restarted 5 s later on the same state, and its
  decisions before and after are reported;

and ``reward_rate.png`` (with the baselines) and ``decision_p99.png`` (per encoder round).
Each live device takes about 0.9 GB of memory (its SuperNode, warm task parent, agent
and preparation worker): the full run needs a machine of about 32 GB.
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

from client.live.preparation import AGENT_FOLDER
from simulations.bench.deployment import _fedssl, _free_port, wait_for_devices

TRAIN_USERS, UNSEEN_USERS = tuple(range(1, 22)), tuple(range(22, 31))
N_ACTIONS, LABELS_PER_CLASS = 6, 10  # HAPT's six activities
RESTART_AFTER_S = 5.0


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
    root: Path, users: tuple[int, ...], unseen: tuple[int, ...], rounds: int, pace: float,
    kill_one: bool, quiet: str | None,
) -> tuple[int, dict[str, Any] | None]:  # fmt: skip
    """Run the deployment; the server's exit code, and what the SIGKILL did (``kill_one``).
    ``quiet``: the device whose agent gets CPU 0 to itself (``quiet_core``)."""
    from server.deployment.certs import make_certs
    from simulations.bench.quiet_core import QuietCore, keep_off

    devices = users + unseen
    names = [f"user-{u:02d}" for u in devices]
    watcher = QuietCore(root / quiet, 0, keep_off(0)) if quiet else None
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
    wait_for_devices(root / "server.log", server, 180)
    commands = {
        name: [
            "client", "--server", f"127.0.0.1:{port}", "--stream", f"npz:{streams[user]}",
            "--pace", str(pace), "--actions", str(N_ACTIONS), "--labels-per-class",
            str(LABELS_PER_CLASS), "--key", str(certs / "nodes" / name), "--ca",
            str(certs / "ca.crt"), "--state-dir", str(root / name),
            *(["--evaluate-only"] if user in unseen else []),
        ]
        for user, name in zip(devices, names, strict=True)
    }  # fmt: skip
    clients = {n: _fedssl(cmd, root / f"{n}.log", root) for n, cmd in commands.items()}
    killed = None
    if kill_one:
        victim = names[0]
        killed = _kill_and_restart(root, victim, clients, commands[victim], server)
    rc = server.wait(3600)
    for c in clients.values():
        c.wait(120)
    if watcher is not None:
        watcher.stop()
        if not watcher.pinned:
            raise RuntimeError(f"the agent of {quiet} was never seen to pin it to CPU 0")
    return rc, killed


def _kill_and_restart(
    root: Path, name: str, clients: dict[str, Any], command: list[str], server: Any
) -> dict[str, Any] | None:
    """Once ``name`` decides with a federated encoder (round >= 1), SIGKILL its client
    (the agent and SuperNode die with it), wait, and start it again on the same state."""
    log = root / name / "decisions.jsonl"
    while server.poll() is None:
        if log.exists() and any(
            json.loads(x)["encoder_round"] >= 1 for x in log.read_text().splitlines()[-20:]
        ):
            break
        time.sleep(1.0)
    else:
        print(f"the run ended before {name} could be killed")
        return None
    clients[name].kill()
    killed_at = time.time()
    clients[name].wait()
    print(f"SIGKILLed {name}'s client; restarting it in {RESTART_AFTER_S:.0f} s", flush=True)
    time.sleep(RESTART_AFTER_S)
    clients[name] = _fedssl(command, root / f"{name}.log", root)
    return {"device": name, "killed_at": killed_at, "restarted_at": time.time()}


def kill_report(root: Path, killed: dict[str, Any]) -> dict[str, Any]:
    """What the killed device did around its SIGKILL, from its decision log and its log."""
    name = killed["device"]
    rows = [json.loads(x) for x in (root / name / "decisions.jsonl").read_text().splitlines()]
    before = [r for r in rows if r["time"] < killed["killed_at"]]
    after = [r for r in rows if r["time"] >= killed["restarted_at"]]
    text = (root / f"{name}.log").read_text(errors="replace")
    resumed = [line for line in text.splitlines() if "resumed: deciding" in line]
    first = after[0] if after else None
    return {
        "device": name,
        "down_s": killed["restarted_at"] - killed["killed_at"],
        "decisions_before": len(before),
        "decisions_after": len(after),
        "round_before_kill": before[-1]["encoder_round"] if before else None,
        "round_at_restart": first["encoder_round"] if first else None,
        "first_decision_after_restart_s": (
            first["time"] - killed["restarted_at"] if first else None
        ),
        # windows stored but not decided across the kill (the replay resumes after the stored)
        "stream_gap_windows": (
            first["window"] - before[-1]["window"] - 1 if first and before else None
        ),
        "resumed_line": resumed[0].split("fedssl ", 1)[-1] if resumed else None,
    }


def _training_spans(state: Path) -> list[tuple[float, float]]:
    """When the device ran its training tasks (wall clock)."""
    spans = []
    for line in (state / "timing.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["stage"] in ("collect_masked_vectors", "train"):
            end = row["time"]
            spans.append((end - row["handler_s"] - (row.get("startup_s") or 0.0), end))
    return spans


def summarize(root: Path, names: list[str], quiet: str | None = None) -> dict[str, Any]:
    """The figures of ``live.json`` from the devices' files; ``quiet``: the device whose
    agent had a core of its own (its latency is reported apart as well)."""
    decisions = load_decisions(root, names)
    counts = [json.loads((root / n / AGENT_FOLDER / "counts.json").read_text()) for n in names]
    metrics = [json.loads(x) for x in (root / "out" / "metrics.jsonl").read_text().splitlines()]
    by_round = _by_round(decisions)
    out = {
        "devices": len(names),
        "rounds_completed": sum(1 for m in metrics if m.get("completed")),
        "decisions": len(decisions),
        "missed_decisions": sum(c["missed"] for c in counts),
        "swaps": sum(c["swaps"] for c in counts),
        **latency(decisions),
        "reward_rate_initial": by_round[0]["reward_rate"] if 0 in by_round else None,
        "reward_rate_final": by_round[max(by_round)]["reward_rate"] if by_round else None,
        "reward_rate_by_round": [by_round[r]["reward_rate"] for r in sorted(by_round)],
        "p99_ms_by_round": [by_round[r]["p99_ms"] for r in sorted(by_round)],
        "decisions_by_round": [by_round[r]["decisions"] for r in sorted(by_round)],
        "store_windows": sum(c["store_windows"] for c in counts),
        "store_bytes": sum(c["store_bytes"] for c in counts),
        "swap_ms": [ms for c in counts for ms in c["swap_ms"]],
        "bad_frames": sum(c["bad_frames"] for c in counts),
    }
    if quiet is not None:
        out["quiet_core"] = {
            "device": quiet,
            **latency([d for d in decisions if d["device"] == quiet]),
        }
    return out


def load_decisions(root: Path, names: list[str]) -> list[dict[str, Any]]:
    """Every device's logged decisions, each marked with its ``device`` and whether that
    device was ``training`` at the time."""
    decisions: list[dict[str, Any]] = []
    for name in names:
        state = root / name
        rows = [json.loads(x) for x in (state / "decisions.jsonl").read_text().splitlines()]
        spans = _training_spans(state) if (state / "timing.jsonl").exists() else []
        for r in rows:
            r["training"] = any(a <= r["time"] <= b for a, b in spans)
            r["device"] = name
        decisions += rows
    return decisions


def latency(decisions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Decision latency p50/p99/max and counts, apart for idle and training devices."""
    lat = {
        k: [d["latency_ms"] for d in decisions if d["training"] == (k == "training")]
        for k in ("idle", "training")
    }
    return {
        "decision_p99_ms": {k: _p(v, 99) for k, v in lat.items()},
        "decision_p50_ms": {k: _p(v, 50) for k, v in lat.items()},
        "decision_max_ms": {k: max(v) if v else None for k, v in lat.items()},
        "decisions_by_state": {k: len(v) for k, v in lat.items()},
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
    rates = {"live (delivered global encoders)": result["reward_rate_by_round"]}
    for arm, values in result.get("baseline_reward_rate_by_round", {}).items():
        rates[f"{arm} (same windows)"] = values
    plot_series(rates, out / "reward_rate.png", x, "reward rate", title)
    plot_series(result["p99_ms_by_round"], out / "decision_p99.png", x, "decision p99 (ms)", title)


def with_baselines(root: Path, result: dict[str, Any], users: tuple[int, ...]) -> None:
    """Add the random-init and raw-feature arms' reward rates by round (same windows)."""
    from simulations.bench.live_baselines import rates_by_round, replay_rewards

    names = [f"user-{u:02d}" for u in users]
    rewards = {
        n: replay_rewards(root / f"{n}.npz", root / n, N_ACTIONS, LABELS_PER_CLASS) for n in names
    }
    result["baseline_reward_rate_by_round"] = rates_by_round(load_decisions(root, names), rewards)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="3 streaming users, 2 rounds")
    p.add_argument("--rounds", type=int, default=0, help="default: 2 quick, 5 full")
    p.add_argument("--pace", type=float, default=5.0, help="windows per second per device")
    p.add_argument("--train-users", type=int, default=0, help="default: 3 quick, 21 full")
    p.add_argument("--unseen-users", type=int, default=-1, help="default: 0 quick, 9 full")
    p.add_argument("--kill-one", action="store_true", help="SIGKILL one device mid-run, restart it")
    p.add_argument(
        "--quiet-core",
        action="store_true",
        help="give the last streaming device's agent CPU 0 alone (everything else elsewhere)",
    )
    p.add_argument("--out", default="", help="folder (default: a temp dir)")
    args = p.parse_args(argv)
    users = TRAIN_USERS[: args.train_users or (3 if args.quick else 21)]
    unseen = UNSEEN_USERS[
        : args.unseen_users if args.unseen_users >= 0 else (0 if args.quick else 9)
    ]
    rounds = args.rounds or (2 if args.quick else 5)
    root = Path(args.out or tempfile.mkdtemp(prefix="fedssl-bench-live-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(f"{len(users)} streaming + {len(unseen)} unseen devices, {rounds} rounds; logs in {root}")
    quiet = f"user-{users[-1]:02d}" if args.quiet_core else None
    rc, killed = run(root, users, unseen, rounds, args.pace, args.kill_one, quiet)
    if rc != 0:
        print(f"the server exited with code {rc}; see {root / 'server.log'}")
        return 1
    result = summarize(root, [f"user-{u:02d}" for u in users + unseen], quiet)
    with_baselines(root, result, users + unseen)
    if killed is not None:
        result["sigkill"] = kill_report(root, killed)
    (root / "live.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, root)
    print(json.dumps({k: v for k, v in result.items() if k != "swap_ms"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
