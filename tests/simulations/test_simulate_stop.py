"""A simulation stopped by a signal ends at once, leaves no process behind and keeps
every finished round; ``fedssl simulate --resume`` then completes it, and each round
still equals FedAvg of its clients' deltas. Real Flower simulations (Ray), real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_run import QUIET_FLOWER, run_cli, run_main
from fedavg_replay import check_rounds_against_fedavg
from procfs import children, ended

from common.config import RunConfig

ROUNDS = 2
ARGS = [
    "--dataset", "digits", "--clients", "3", "--rounds", str(ROUNDS), "--local-epochs", "1",
    "--batch-size", "64", "--seed", "5", "--no-evaluate", "--evaluate-every", "0",
]  # fmt: skip


class Background:
    """``fedssl simulate`` in the background, its stderr collected as it comes."""

    def __init__(self, out: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "common.cli", "simulate", *ARGS, "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **QUIET_FLOWER},
        )
        self.lines: list[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in "".join(self.lines):
            assert self.proc.poll() is None, "".join(self.lines)[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} in {timeout} s"
            time.sleep(0.05)

    def stderr(self) -> str:
        self.pump.join(timeout=10)  # the pipe closes when the process ends
        return "".join(self.lines)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_stopped_simulation_ends_at_once_and_resumes(tmp_path: Path) -> None:
    out, sig = tmp_path / "run", signal.SIGINT  # what Ctrl-C sends
    run = Background(out)
    try:
        run.wait_for(f"[round 1/{ROUNDS}] ok", timeout=300)
        ray_processes = children(run.proc.pid)
        assert ray_processes, "the simulation started no Ray processes"
        t0 = time.monotonic()
        run.proc.send_signal(sig)
        code = run.proc.wait(timeout=60)
        took = time.monotonic() - t0
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    err = run.stderr()
    assert code == 128 + sig, err
    assert took < 30, f"the stop took {took:.1f} s"
    kept = [r["round"] for r in _rows(out) if r["completed"]]
    assert kept and kept == list(range(1, len(kept) + 1)) and len(kept) < ROUNDS
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert f"--resume --out {out}" in err
    assert "Traceback" not in err and "flower: ERROR" not in err, err
    assert not (out / "summary.json").exists()
    assert ended(ray_processes, within=20), "Ray processes outlived the stopped simulation"

    resumed = run_cli("simulate", "--resume", "--out", str(out), timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {out} at round {len(kept) + 1}" in resumed.stderr
    assert "the resumed part took" in resumed.stdout
    assert [r["round"] for r in _rows(out)] == list(range(1, ROUNDS + 1))
    assert json.loads((out / "summary.json").read_text())["rounds_completed"] == ROUNDS
    cfg = RunConfig(
        dataset="digits", num_clients=3, num_server_rounds=ROUNDS, local_epochs=1,
        batch_size=64, seed=5, evaluate=False, evaluate_every=0,
    )  # fmt: skip
    everyone = {rnd: {0, 1, 2} for rnd in range(1, ROUNDS + 1)}
    restart = len(kept) + 1
    check_rounds_against_fedavg(out, cfg, everyone, dict(everyone), state_restarts_at=restart)
    # The clients' optimizer state matters: replaying them as if it had been kept fails.
    with pytest.raises(AssertionError, match=f"round {restart}: differs from FedAvg"):
        check_rounds_against_fedavg(out, cfg, everyone, dict(everyone))


def _saved_run(out: Path, *, finished: bool) -> None:
    """A run folder as a stopped (or finished) simulation leaves it."""
    out.mkdir()
    cfg = RunConfig(dataset="digits", num_clients=3, out_dir=str(out))
    (out / "config.json").write_text(json.dumps({**cfg.to_flat(), "resolved-clients": 3}))
    if finished:
        (out / "summary.json").write_text("{}")


@pytest.mark.parametrize(
    ("case", "argv", "message"),
    [
        ("no --out", [], "--resume needs --out"),
        ("no run", ["--out", "{empty}"], "holds no run to continue"),
        ("finished", ["--out", "{finished}"], "holds a finished run"),
        ("changed", ["--out", "{stopped}", "--lr", "0.01"], "learning-rate: 0.001 -> 0.01"),
        ("other split", ["--out", "{stopped}", "--clients", "4"], "num-clients: 3 -> 4"),
    ],
)
def test_resume_refuses_what_it_cannot_continue(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    argv: list[str],
    message: str,
) -> None:
    (tmp_path / "empty").mkdir()
    _saved_run(tmp_path / "finished", finished=True)
    _saved_run(tmp_path / "stopped", finished=False)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    folders = {k: str(tmp_path / k) for k in ("empty", "finished", "stopped")}
    code, err = run_main(
        ["simulate", "--resume", *(a.format(**folders) for a in argv)], capsys, monkeypatch
    )
    assert code == 2, err
    assert message in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written
