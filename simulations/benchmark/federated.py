"""The federated arm of ``fedssl benchmark``: a real ``fedssl simulate`` run (SecAgg+)
in a child process, so that Ray lives and dies with it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from common.config import RunConfig
from server.outputs import read_rows
from simulations.benchmark.parts import finished_run_seconds, stopped_run

log = logging.getLogger("fedssl.benchmark")

# The federated arm simulates every client of a round on the few local cores, one after
# another, so SecAgg+'s per-stage timeout (default 300 s, meant for real devices) would
# cut off the clients trained last once a round's training outlasts it (measured:
# Fashion-MNIST, 100 clients, 1 local epoch, 2 cores: 250-500 s per round, 20 of 100
# clients dropped) and the arm would see less data than the others. No simulated client
# drops out, so wait as long as the training takes.
SIMULATION_SECAGG_TIMEOUT_S = 24 * 3600.0


def simulate_federated(cfg: RunConfig, out: Path, ray_address: str = "") -> float:
    """``fedssl simulate --config`` of ``cfg`` in a child process, on the Ray cluster at
    ``ray_address`` if given; returns its wall time. SecAgg+ as configured, but neither
    the server's probe nor the devices' evaluation: the benchmark scores every arm
    itself, and their time would count against the federated arm. A finished run of the
    same config already in ``out`` (a resumed benchmark) is kept, and its own seconds
    returned; a stopped one is resumed (``fedssl simulate --resume``), and its rounds'
    seconds returned."""
    run_cfg = cfg.replace(
        secagg_timeout=SIMULATION_SECAGG_TIMEOUT_S,
        evaluate=False,
        evaluate_every=0,
        out_dir=str(out.resolve()),
    )
    config = out.parent / f"run-config-{out.name}.json"
    seconds = finished_run_seconds(out, config, run_cfg)
    if seconds is not None:
        log.info("reusing the finished federated run in %s", out)
        return seconds
    if stopped_run(out, config, run_cfg):
        log.info("resuming the stopped federated run in %s", out)
        _simulate(["--resume", "--out", str(out)], ray_address)
        return rounds_seconds(out)
    if out.exists():  # stopped before it recorded its config, or another config: run again
        aside = out.with_name(f"{out.name}.stopped-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning("%s holds no run of this config to resume; moved to %s", out, aside)
        out.rename(aside)
    out.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(run_cfg.to_flat(), indent=2) + "\n")
    return _simulate(["--config", str(config)], ray_address)


def _simulate(args: list[str], ray_address: str) -> float:
    """``fedssl simulate ARGS`` in a child process; its wall seconds."""
    cmd = [sys.executable, "-m", "common.cli", "simulate", *args]
    if ray_address:
        cmd += ["--ray-address", ray_address]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"federated run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def rounds_seconds(run_dir: Path) -> float:
    """The rounds' own seconds, summed: the time of a run that ran in parts (a resumed
    one), without the start-ups of its parts."""
    return float(sum(r.get("seconds", 0.0) for r in read_rows(run_dir)))
