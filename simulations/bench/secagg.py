"""Benchmark: per-round time with and without SecAgg+ on the same workload, side by side.

    python -m simulations.bench.secagg --dataset hapt --rounds 4

Runs ``fedssl simulate`` twice in child processes (identical config but for
secure aggregation), measures wall time and the peak memory of each process tree
(Ray workers included), and prints one table. Round 1 carries Ray's start-up and
is reported apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from simulations.bench.proc_tree import PeakMemory


def run_one(out: Path, secure: bool, extra: list[str]) -> dict:
    # common.cli forces the safe Flower environment (no telemetry, no runtime installs).
    cmd = [sys.executable, "-m", "common.cli", "simulate", "--out", str(out), *extra]
    if not secure:
        cmd.append("--no-secure-aggregation")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with PeakMemory(proc.pid) as mem:
        output, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(output[-4000:])
        raise SystemExit(f"simulate failed with exit code {proc.returncode}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    later = [r["seconds"] for r in rows[1:]] or [rows[0]["seconds"]]
    probe = summary.get("linear_probe", {}).get("federated", {})
    return {
        "secure": secure,
        "wall_s": wall,
        "peak_rss_gib": mem.peak / 2**30,
        "round1_s": rows[0]["seconds"],
        "round_mean_s": statistics.mean(later),
        "round_median_s": statistics.median(later),
        "probe": probe.get("accuracy"),
        "upload_bytes": rows[0]["upload_bytes_per_client"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="hapt")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--clients", type=int, default=0)
    p.add_argument("--local-epochs", type=int, default=None)
    p.add_argument("--evaluate", action="store_true", help="also run the final linear probe")
    args = p.parse_args(argv)
    extra = [
        "--dataset",
        args.dataset,
        "--rounds",
        str(args.rounds),
        "--clients",
        str(args.clients),
    ]
    if args.local_epochs:
        extra += ["--local-epochs", str(args.local_epochs)]
    if not args.evaluate:
        extra.append("--no-evaluate")
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_one(Path(tmp) / f"run-{s}", s, extra) for s in (True, False)]
    print(f"\nSecAgg+ vs plain FedAvg — {' '.join(extra)}")
    print(
        f"{'aggregation':<14}{'round 1 s':>10}{'later rounds s (mean/median)':>30}{'wall s':>9}{'peak RSS GiB':>14}{'upload/client MB':>18}"
    )
    for r in results:
        name = "SecAgg+" if r["secure"] else "plain FedAvg"
        print(
            f"{name:<14}{r['round1_s']:>10.1f}{r['round_mean_s']:>19.2f} / {r['round_median_s']:<8.2f}"
            f"{r['wall_s']:>9.0f}{r['peak_rss_gib']:>14.2f}{r['upload_bytes'] / 1e6:>18.2f}"
        )
    sec, plain = results
    print(
        f"SecAgg+ / plain per-round time ratio: {sec['round_mean_s'] / plain['round_mean_s']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
