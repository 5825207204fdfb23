"""Load and soak benchmark: run ``fedssl simulate`` and watch its memory and open files.

    python -m simulations.bench.load --json load.json -- --dataset digits --clients 100 --rounds 3
    python -m simulations.bench.load --json soak.json -- --dataset digits --clients 3 \\
        --rounds 50 --local-epochs 1 --batch-size 16 --no-evaluate

Everything after ``--`` (and any option this script does not know) goes to
``fedssl simulate``: put this script's own options before ``--``. Every ``--interval`` seconds it samples, from /proc, the RSS of
the simulate process (the ServerApp runs in it) and of its whole process tree (Ray's
GCS, raylet and workers are descendants), and the open file descriptors of both.
Samples are tied to rounds by watching the run's ``metrics.jsonl``. At the end it
prints wall time, peak tree RSS, a per-round table and a growth verdict: the
least-squares slope (MB per round, with its standard error) of server and tree RSS
at the end of each round after a warm-up, the steepest processes of the tree, and
the open fds at the warm-up against the end. Server RSS "grows" when its slope is
over ``--max-slope-mb`` and more than noise; a run too short for its noise is
called inconclusive. Tree RSS sums each
process's RSS, so pages shared between processes (torch's libraries) count once per
process: it overstates the physical total.

Exit status: that of ``fedssl simulate`` (non-zero when the run failed); with
``--check``, 4 when the run passed but memory or open files grew.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import EXIT_GROWTH
from simulations.bench.growth import fd_growth, fit_growth
from simulations.bench.load_samples import (
    MB,
    RoundFigures,
    RowWatcher,
    Sample,
    per_round,
    take_sample,
)
from simulations.bench.proc_tree import proc_name


@dataclass
class LoadResult:
    command: list[str]
    exit_code: int
    wall_s: float
    peak_tree_rss_mb: float
    peak_server_rss_mb: float
    peak_tree_fds: int
    peak_procs: int
    warmup_round: int
    rounds: list[RoundFigures]
    growth: dict[str, Any] = field(default_factory=dict)
    grows: bool = False
    # Some series neither grows nor is shown flat: too few rounds for its noise.
    inconclusive: bool = False
    # Per process of the tree, RSS slope after the warm-up, steepest first.
    process_growth: list[dict[str, Any]] = field(default_factory=list)
    # Processes of the run still alive 10 s after simulate exited (then ended).
    leftover_processes: list[str] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)
    out_dir: str = ""


def default_warmup(n_rounds: int) -> int:
    return max(5, n_rounds // 10)


def run_and_watch(
    sim_args: list[str],
    out: Path,
    log_path: Path,
    *,
    interval: float = 0.5,
    timeout: float | None = None,
    progress: bool = True,
) -> tuple[int, float, list[dict[str, Any]], list[Sample], int]:
    """Run ``fedssl simulate`` with ``sim_args --out out``; sample until it exits.
    Past ``timeout`` seconds its process group (Ray's processes too) is killed and
    the exit code is 124. Returns the exit code, wall time, rows, samples and the
    child's session id."""
    cmd = [sys.executable, "-m", "common.cli", "simulate", *sim_args, "--out", str(out)]
    env = {
        **os.environ,
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    }
    watcher = RowWatcher(out / "metrics.jsonl")
    samples: list[Sample] = []
    total = "?"
    t0 = time.perf_counter()
    last_note = t0
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            while True:
                done = proc.poll() is not None
                if timeout is not None and not done and time.perf_counter() - t0 > timeout:
                    _note(f"timed out after {timeout:.0f} s: killing the run")
                    _kill_group(proc)
                    return 124, time.perf_counter() - t0, watcher.rows, samples, proc.pid
                new = watcher.poll()
                now = time.perf_counter()
                s = take_sample(proc.pid, now - t0, len(watcher.rows))
                if s.procs:
                    samples.append(s)
                if total == "?" and (out / "config.json").is_file():
                    total = str(json.loads((out / "config.json").read_text())["num-server-rounds"])
                if progress:
                    for row in new:
                        _note(
                            f"round {row['round']}/{total} "
                            f"{'ok' if row['completed'] else 'FAILED'} "
                            f"{row['clients_aggregated']}/{row['clients_sampled']} clients "
                            f"{row.get('seconds', 0):.1f} s | server {s.server_rss / MB:.0f} MB, "
                            f"tree {s.tree_rss / MB:.0f} MB in {s.procs} procs, "
                            f"fds {s.server_fds}/{s.tree_fds}"
                        )
                        last_note = now
                    if now - last_note > 30 and not done:
                        _note(
                            f"{now - t0:.0f} s, {len(watcher.rows)} rounds done, "
                            f"tree {s.tree_rss / MB:.0f} MB in {s.procs} procs"
                        )
                        last_note = now
                if done:
                    break
                time.sleep(interval)
        except BaseException:
            _kill_group(proc)
            raise
    return proc.returncode, time.perf_counter() - t0, watcher.rows, samples, proc.pid


def session_leftovers(sid: int, wait_s: float = 10.0) -> list[str]:
    """Processes still alive (not zombies) in session ``sid`` (the child's) ``wait_s``
    after it exited, as "PID name"; each is then ended (they are this run's)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    zombie = stat.rsplit(")", 1)[1].split()[0] == "Z"
                    if os.getsid(int(entry)) == sid and not zombie:
                        left.append(int(entry))
                except (OSError, IndexError):
                    continue
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    names = [f"{p} {proc_name(p)}" for p in left]
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    return names


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End the child's session (it was started in its own: Ray's processes are in it
    too), then reap the child."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            pass
    proc.wait()


def measure(
    sim_args: list[str],
    out: Path,
    log_path: Path,
    *,
    interval: float = 0.5,
    timeout: float | None = None,
    warmup: int | None = None,
    max_slope_mb: float = 0.5,
    fd_slack: int = 2,
    progress: bool = True,
) -> LoadResult:
    rc, wall, rows, samples, sid = run_and_watch(
        sim_args, out, log_path, interval=interval, timeout=timeout, progress=progress
    )
    leftovers = session_leftovers(sid)
    figs = per_round(rows, samples)
    warm = default_warmup(len(figs)) if warmup is None else warmup
    growth, grows, inconclusive = _growth(figs, warm, max_slope_mb, fd_slack)
    procs_growth = _process_growth(figs, warm)
    return LoadResult(
        command=["fedssl", "simulate", *sim_args],
        exit_code=rc,
        wall_s=wall,
        peak_tree_rss_mb=max((s.tree_rss for s in samples), default=0) / MB,
        peak_server_rss_mb=max((s.server_rss for s in samples), default=0) / MB,
        peak_tree_fds=max((s.tree_fds for s in samples), default=0),
        peak_procs=max((s.procs for s in samples), default=0),
        warmup_round=warm,
        rounds=figs,
        growth=growth,
        grows=grows,
        inconclusive=inconclusive and not grows,
        process_growth=procs_growth,
        leftover_processes=leftovers,
        load_average=list(os.getloadavg()),
        out_dir=str(out),
    )


def _growth(
    figs: list[RoundFigures], warm: int, max_slope_mb: float, fd_slack: int
) -> tuple[dict[str, Any], bool, bool]:
    """Memory and open-file growth per round after the warm-up, and the verdict:
    (figures, the server grows, a limit could be neither confirmed nor refuted)."""
    rnds = [f.round for f in figs]
    growth: dict[str, Any] = {}
    grows = inconclusive = False
    for key, values, limit in (
        ("server_rss_mb_per_round", [f.server_rss_mb for f in figs], max_slope_mb),
        ("tree_rss_mb_per_round", [f.tree_rss_mb for f in figs], None),
    ):
        g = fit_growth(rnds, values, warmup=warm, limit=limit or float("inf"))
        if g is not None:
            growth[key] = {**asdict(g), "over_span": g.over_span, "limit": limit}
            grows |= g.grows
            inconclusive |= limit is not None and not (g.grows or g.flat)
    for key, fds in (
        ("server_fds", [f.server_fds for f in figs]),
        ("tree_fds", [f.tree_fds for f in figs]),
    ):
        fg = fd_growth(rnds, fds, warmup=warm, slack=fd_slack)
        if fg is not None:
            growth[key] = asdict(fg)
            grows |= fg.grows and key == "server_fds"
    return growth, grows, inconclusive


def _process_growth(figs: list[RoundFigures], warm: int) -> list[dict[str, Any]]:
    """Each process's RSS slope per round, fastest-growing first."""
    series: dict[str, list[tuple[int, float, str]]] = {}  # PID -> (round, MB, name)
    for f in figs:
        for key, mb in f.by_proc_mb.items():
            pid, _, name = key.partition(" ")
            series.setdefault(pid, []).append((f.round, mb, name))
    out: list[dict[str, Any]] = []
    for pid, pts in series.items():
        g = fit_growth([r for r, _, _ in pts], [v for _, v, _ in pts], warmup=warm, limit=1e9)
        if g is not None:
            out.append(
                {
                    "process": f"{pid} {pts[-1][2]}",
                    "mb_per_round": g.slope,
                    "rss_mb_at_end": pts[-1][1],
                }
            )
    return sorted(out, key=lambda x: -x["mb_per_round"])


def print_report(res: LoadResult, every: int | None = None) -> None:
    n = len(res.rounds)
    k = every or max(1, n // 20)
    ok = sum(f.completed for f in res.rounds)
    print(f"\nload: {' '.join(res.command)}")
    print(
        f"exit {res.exit_code}, {ok}/{n} rounds completed, wall {res.wall_s:.1f} s, "
        f"peak tree RSS {res.peak_tree_rss_mb:.0f} MB ({res.peak_procs} procs at most), "
        f"peak server RSS {res.peak_server_rss_mb:.0f} MB, "
        f"load average {' '.join(f'{x:.2f}' for x in res.load_average)}"
    )
    if res.leftover_processes:
        print(f"LEFT BEHIND after exit: {', '.join(res.leftover_processes)}")
    print(
        f"{'round':>5} {'ok':>3} {'clients':>9} {'sec':>7} {'server MB':>10} {'tree MB':>8} "
        f"{'tree peak':>10} {'fds srv':>8} {'fds tree':>9} {'procs':>6}"
    )
    for f in res.rounds:
        if f.round % k and f.round not in (1, res.warmup_round, res.rounds[-1].round):
            continue
        print(
            f"{f.round:>5} {'y' if f.completed else 'N':>3} "
            f"{f'{f.clients_aggregated}/{f.clients_sampled}':>9} {f.seconds:>7.1f} "
            f"{f.server_rss_mb:>10.1f} {f.tree_rss_mb:>8.0f} {f.tree_peak_mb:>10.0f} "
            f"{f.server_fds:>8} {f.tree_fds:>9} {f.procs:>6}"
        )
    g = res.growth
    if not g:
        print(f"growth: too few rounds after the warm-up (round {res.warmup_round}) to judge")
        return
    print(f"growth after round {res.warmup_round}:")
    for key in ("server_rss_mb_per_round", "tree_rss_mb_per_round"):
        if key in g:
            x = g[key]
            lim = f" (limit {x['limit']})" if x["limit"] is not None else ""
            print(
                f"  {key}: {x['slope']:+.3f} +- {x['stderr']:.3f}{lim}, "
                f"{x['over_span']:+.1f} MB over rounds {x['first_round']}-{x['last_round']}"
            )
    for key in ("server_fds", "tree_fds"):
        if key in g:
            x = g[key]
            print(
                f"  {key}: {x['at_warmup']:.0f} at warm-up -> {x['at_end']:.0f} at the end "
                f"(slack {x['slack']})"
            )
    if res.process_growth:
        print("  steepest processes (MB per round, RSS at the end):")
        for x in res.process_growth[:4]:
            print(f"    {x['mb_per_round']:+.3f}  {x['rss_mb_at_end']:7.0f} MB  {x['process']}")
    verdict = "GROWS" if res.grows else "no growth"
    if res.inconclusive:
        verdict = "inconclusive (too few rounds for the noise: run longer)"
    print(f"verdict: {verdict}")


def _note(msg: str) -> None:
    print(f"[bench_load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--json", type=Path, help="write the figures to this JSON file")
    p.add_argument("--out", type=Path, help="run folder to keep (default: a temporary one)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    p.add_argument(
        "--warmup", type=int, help="rounds left out of the growth fit (default: max(5, 10%%))"
    )
    p.add_argument(
        "--max-slope-mb", type=float, default=0.5, help="server RSS growth limit, MB per round"
    )
    p.add_argument("--fd-slack", type=int, default=2, help="extra server fds tolerated at the end")
    p.add_argument("--timeout", type=float, help="kill the run after this many seconds")
    p.add_argument("--every", type=int, help="print every k-th round (default: about 20 rows)")
    p.add_argument("--check", action="store_true", help=f"exit {EXIT_GROWTH} on growth")
    args, sim_args = p.parse_known_args(argv)
    sim_args = [a for a in sim_args if a != "--"]
    with tempfile.TemporaryDirectory(prefix="bench_load-") as tmp:
        out = args.out.resolve() if args.out else Path(tmp) / "run"
        log_path = out.with_name(out.name + ".log")
        _note(f"simulate log: {log_path}")
        res = measure(
            sim_args,
            out,
            log_path,
            interval=args.interval,
            timeout=args.timeout,
            warmup=args.warmup,
            max_slope_mb=args.max_slope_mb,
            fd_slack=args.fd_slack,
        )
        if res.exit_code != 0:
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
    print_report(res, args.every)
    if args.json:
        args.json.write_text(json.dumps(asdict(res), indent=2) + "\n")
    if res.exit_code != 0:
        print(f"bench_load: simulate FAILED with exit code {res.exit_code}", file=sys.stderr)
        return res.exit_code
    return EXIT_GROWTH if args.check and res.grows else 0


if __name__ == "__main__":
    sys.exit(main())
