"""Load (issue 6.6): 100 simulated clients x 3 SecAgg+ rounds on 2 cores complete, and a
long run shows no growth in memory or open files.

The two runs are slow (``pytest -m slow tests/simulations/test_load.py``); the growth
verdict they rely on is unit-tested here on synthetic series, so it can fail.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from procfs import alive

from simulations.bench import load as bench_load
from simulations.bench.growth import fd_growth, fit_growth
from simulations.bench.load import Sample, per_round

# ---- the growth verdict on synthetic series (fast) ----


def _noisy(n: int, start: float, per_round: float, noise: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [start + per_round * r + rng.gauss(0.0, noise) for r in range(1, n + 1)]


@pytest.mark.parametrize("seed", range(5))
def test_a_leak_of_one_mb_per_round_is_flagged(seed: int) -> None:
    rounds = list(range(1, 51))
    g = fit_growth(rounds, _noisy(50, 700.0, 1.0, 3.0, seed), warmup=10, limit=0.5)
    assert g is not None and g.grows and not g.flat
    assert 0.7 < g.slope < 1.3 and g.stderr < 0.1
    assert (g.first_round, g.last_round, g.points) == (11, 50, 40)


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_is_not_flagged(seed: int) -> None:
    rounds = list(range(1, 51))
    # Noise like the measured server RSS (a few MB round to round), no trend.
    g = fit_growth(rounds, _noisy(50, 700.0, 0.0, 3.0, seed), warmup=10, limit=0.5)
    assert g is not None and not g.grows and g.flat
    assert abs(g.slope) < 0.3


def test_warm_up_growth_is_left_out_of_the_fit() -> None:
    rounds = list(range(1, 51))
    # 30 MB per round for 5 rounds (allocator and import warm-up), then flat.
    values = [550.0 + 30 * min(r, 5) for r in rounds]
    assert fit_growth(rounds, values, warmup=0, limit=0.5).grows  # type: ignore[union-attr]
    g = fit_growth(rounds, values, warmup=5, limit=0.5)
    assert g is not None and not g.grows and g.slope == pytest.approx(0.0)


def test_a_short_noisy_series_is_inconclusive_not_a_leak() -> None:
    # Server RSS (MB) of a measured 100-client run, rounds 5-12: it swings by 100 MB
    # round to round around a plateau (1794 MB first reached in round 7).
    values = [1696.5, 1754.3, 1793.8, 1711.8, 1793.7, 1749.3, 1768.0, 1785.5]
    g = fit_growth(list(range(5, 13)), values, warmup=4, limit=0.5)
    assert g is not None and g.slope > 0.5  # the raw slope alone would cry leak
    assert not g.grows and not g.flat


def test_too_few_rounds_after_the_warm_up_give_no_verdict() -> None:
    assert fit_growth([1, 2, 3], [1.0, 2.0, 3.0], warmup=5, limit=0.5) is None
    assert fd_growth([1, 2, 3], [30, 30, 30], warmup=5, slack=4) is None


def test_fd_growth_flags_a_steady_leak_but_not_a_transient() -> None:
    rounds = list(range(1, 51))
    leaking = [34 + r // 5 for r in rounds]  # one descriptor every 5 rounds
    g = fd_growth(rounds, leaking, warmup=5, slack=4)
    assert g is not None and g.grows and g.at_end - g.at_warmup >= 8
    transient = [34] * 50
    transient[30] = 60  # a burst of sockets open for one round
    transient[-1] = 36  # and two more at the very last sample
    g = fd_growth(rounds, transient, warmup=5, slack=4)
    assert g is not None and not g.grows


def test_samples_are_tied_to_the_round_they_ran_in() -> None:
    mb = bench_load.MB

    def s(t: float, done: int, server: int, tree: int) -> Sample:
        return Sample(t, done, server * mb, tree * mb, 30 + done, 300, 8)

    samples = [s(0, 0, 100, 500), s(1, 0, 300, 2000), s(2, 1, 310, 1500), s(3, 1, 320, 2500)]
    samples += [s(4, 2, 330, 1600)]
    rows = [
        {"round": r, "completed": True, "clients_aggregated": 3, "clients_sampled": 3, "seconds": 1}
        for r in (1, 2, 3)
    ]
    figs = per_round(rows, samples)
    assert [f.server_rss_mb for f in figs] == [310, 330, 330]  # round 3: the last sample
    assert [f.tree_peak_mb for f in figs] == [2000, 2500, 1600]
    assert [f.server_fds for f in figs] == [31, 32, 32]


def test_row_watcher_waits_for_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    w = bench_load.RowWatcher(path)
    assert w.poll() == []  # not created yet
    path.write_text('{"round": 1}\n{"rou')
    assert w.poll() == [{"round": 1}]
    with open(path, "a") as fh:
        fh.write('nd": 2}\n')
    assert w.poll() == [{"round": 2}]
    assert [r["round"] for r in w.rows] == [1, 2]


def test_processes_left_in_the_run_session_are_found_and_ended() -> None:
    # A session leader that exits but leaves a child behind, as Ray's processes could.
    leader = subprocess.Popen(
        ["sh", "-c", "sleep 60 >/dev/null & echo $!"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert leader.stdout is not None
    child = int(leader.stdout.readline())
    leader.wait(timeout=10)
    try:
        left = bench_load.session_leftovers(leader.pid, wait_s=0.5)
        assert left == [f"{child} sleep"]
        time.sleep(0.2)
        assert not alive(child)
        assert bench_load.session_leftovers(leader.pid, wait_s=0.1) == []
    finally:
        if Path(f"/proc/{child}").exists():
            os.kill(child, signal.SIGKILL)


# ---- the real runs (slow) ----


def _measure(tmp_path: Path, args: list[str], timeout: float) -> bench_load.LoadResult:
    out = tmp_path / "run"
    json_path = tmp_path / "load.json"
    # Options of bench_load first: everything after "--" goes to fedssl simulate.
    rc = bench_load.main(
        ["--out", str(out), "--json", str(json_path), "--timeout", str(timeout), *args]
    )
    data = json.loads(json_path.read_text())
    assert rc == 0 and data["exit_code"] == 0, (out.with_name("run.log")).read_text()[-4000:]
    data["rounds"] = [bench_load.RoundFigures(**r) for r in data["rounds"]]
    return bench_load.LoadResult(**data)


@pytest.mark.slow
def test_100_clients_3_secagg_rounds_complete(tmp_path: Path, capsys) -> None:
    res = _measure(
        tmp_path,
        ["--", "--dataset", "digits", "--clients", "100", "--rounds", "3"]
        + ["--local-epochs", "1", "--no-evaluate", "--seed", "1"],
        timeout=1200,
    )
    assert [f.round for f in res.rounds] == [1, 2, 3]
    assert all(f.completed for f in res.rounds)
    assert all(f.clients_aggregated == f.clients_sampled == 100 for f in res.rounds)
    assert res.leftover_processes == []  # Ray shut down with the run
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["secure_aggregation"] is True
    # Figures are recorded and printed.
    assert res.wall_s > 0 and res.peak_tree_rss_mb > res.peak_server_rss_mb > 0
    printed = capsys.readouterr().out
    assert "peak tree RSS" in printed and "wall" in printed
    with capsys.disabled():
        print(
            f"\n100 clients x 3 SecAgg+ rounds: wall {res.wall_s:.0f} s, peak tree RSS "
            f"{res.peak_tree_rss_mb:.0f} MB, rounds {[f.seconds for f in res.rounds]} s"
        )


# Thresholds, from measurement (2 shared cores, load average 4-10; README "Load"). After
# a 10-round warm-up the server's RSS rose 0.08 MB/round over 50 rounds (standard error
# 0.03; round-to-round noise 2.5 MB) and 0.04 MB/round over 150 rounds (0.19 in its
# worst 50-round window, a one-off 10 MB step). 0.5 MB/round (25 MB over 50 rounds) is
# 2.5x that worst window and a third of what keeping one float32 copy of the encoder
# (1.5 MB) per round would add. The whole tree (noise 11 MB) rose 0.62 and 0.16
# MB/round, most of it Ray's GCS task-event log (bounded by Ray); 2 MB/round catches a
# model copy kept per round by both client actors (3 MB/round). Open fds were constant
# (server 34, tree 363) from round 1 to the last round but one; the last round's end
# shows 2 more as the run winds down, which the 3-round medians ignore.
SOAK_ROUNDS = 50
SOAK_WARMUP = 10
MAX_SERVER_SLOPE_MB = 0.5
MAX_TREE_SLOPE_MB = 2.0
FD_SLACK = 2


@pytest.mark.slow
def test_long_run_shows_no_growth_in_memory_or_open_files(tmp_path: Path) -> None:
    res = _measure(
        tmp_path,
        [
            "--warmup",
            str(SOAK_WARMUP),
            "--max-slope-mb",
            str(MAX_SERVER_SLOPE_MB),
            "--fd-slack",
            str(FD_SLACK),
            "--",
            "--dataset",
            "digits",
            "--clients",
            "3",
            "--rounds",
            str(SOAK_ROUNDS),
            "--local-epochs",
            "1",
            "--batch-size",
            "16",
            "--no-evaluate",
        ],
        timeout=1800,
    )
    assert len(res.rounds) == SOAK_ROUNDS and all(f.completed for f in res.rounds)
    # Flat means: even the slope plus two standard errors is within the limit.
    server = res.growth["server_rss_mb_per_round"]
    assert server["flat"] and server["slope"] + 2 * server["stderr"] <= MAX_SERVER_SLOPE_MB
    assert not res.inconclusive, res.growth
    fds = res.growth["server_fds"]
    assert fds["at_end"] - fds["at_warmup"] <= FD_SLACK, res.growth
    tree = res.growth["tree_rss_mb_per_round"]
    assert tree["slope"] + 2 * tree["stderr"] < MAX_TREE_SLOPE_MB, res.growth
    tree_fds = res.growth["tree_fds"]
    assert tree_fds["at_end"] - tree_fds["at_warmup"] <= FD_SLACK, res.growth
    # No Ray worker is started per round and left behind.
    procs = [f.procs for f in res.rounds if f.round > SOAK_WARMUP]
    assert max(procs) - min(procs) <= 1, procs
    assert res.leftover_processes == []
    assert not res.grows
