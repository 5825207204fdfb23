"""`fedssl benchmark --quick` runs every arm end to end on small data (a real simulation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_run import run_cli, run_main

# Half the clients per round: the other arms' budget shrinks to match (2 x 1 x 0.5).
QUICK = ["--quick", "--dataset", "digits", "--clients", "6", "--rounds", "2", "--fraction-train"]
QUICK += ["0.5", "--local-clients", "2", "--supervised-steps", "30", "--pretrain-seeds", "3,4"]
QUICK += ["--fractions", "0.1", "--seeds", "0"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One quick benchmark, run once for the tests of this module (read-only to them)."""
    out = tmp_path_factory.mktemp("quick") / "bench"
    proc = run_cli("benchmark", *QUICK, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_quick_benchmark_end_to_end(finished: Path) -> None:
    out = finished
    res = json.loads((out / "results.json").read_text())
    arms = res["arms"]
    assert set(arms) == {
        "federated",
        "centralized",
        "random_init",
        "local_only",
        "supervised",
        "raw",
    }
    for name in ("federated", "centralized", "random_init"):
        for proto in ("linear", "knn"):
            assert 0.0 <= arms[name][proto]["accuracy"] <= 1.0
        assert arms[name]["few-label"]["0.1"]["labels_used"] > 0
    assert arms["local_only"]["clients_evaluated"] == 2
    assert arms["local_only"]["linear"]["worst"] <= arms["local_only"]["linear"]["accuracy"]
    assert set(arms["supervised"]) == {"0.1", "1"}
    # digits is easy: every learned or raw linear read-out is far above chance (10 %)
    assert arms["raw"]["linear"]["accuracy"] > 0.8 and arms["federated"]["linear"]["accuracy"] > 0.8
    # two pretraining seeds: each a whole run; the arms give their mean, the s.e. beside it
    assert set(res["by_seed"]) == {"3", "4"}
    per_seed = [r["arms"]["federated"]["linear"]["accuracy"] for r in res["by_seed"].values()]
    assert arms["federated"]["linear"]["accuracy"] == pytest.approx(np.mean(per_seed))
    se = res["arms_se"]["centralized"]["knn"]["accuracy"]
    cen = [r["arms"]["centralized"]["knn"]["accuracy"] for r in res["by_seed"].values()]
    assert se == pytest.approx(np.std(cen, ddof=1) / np.sqrt(2))
    assert [r for r, _ in res["curves"]["federated"]] == [0, 1, 2]
    assert res["fraction_train"] == 0.5 and res["ssl_epochs_per_sample"] == 1
    rows = (out / "federated" / "seed-4" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["clients_sampled"] for r in rows] == [3, 3]
    # the benchmark scores the arms itself: no device evaluation spends the arm's time
    assert not any("federated_evaluation" in json.loads(r) for r in rows)
    # time to accuracy: federated rounds at the sum of their durations, centralized at
    # its training seconds, both from 0 and increasing
    secs = [json.loads(r)["seconds"] for r in rows]
    fed_t = [t for t, _ in res["by_seed"]["4"]["curves_seconds"]["federated"]]
    assert fed_t == pytest.approx([0.0, secs[0], secs[0] + secs[1]])
    cen = res["by_seed"]["4"]["curves_seconds"]["centralized"]
    assert cen[0][0] == 0.0 and all(b[0] > a[0] for a, b in zip(cen, cen[1:], strict=False))
    assert [a for _, a in cen] == [a for _, a in res["by_seed"]["4"]["curves"]["centralized"]]
    for png in ("probe_per_round.png", "protocols.png", "label_fraction.png"):
        assert (out / png).stat().st_size > 1000
    table = (out / "results.md").read_text()
    assert "federated SSL (SecAgg+)" in table and "supervised from scratch" in table
    assert "50% of the clients per round" in table
    assert " ± " in table and "Time to accuracy" in table
    assert (out / "federated" / "seed-3" / "metrics.jsonl").exists()


def test_a_stopped_benchmark_resumes_from_its_finished_arms(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(*extra: str) -> str:
        """Run in this process: each of these is refused before any work."""
        code, err = run_main(["benchmark", *QUICK, "--out", str(out), *extra], capsys, monkeypatch)
        assert code == 2, err[-2000:]
        return err

    out = tmp_path / "bench"
    shutil.copytree(finished, out)
    before = json.loads((out / "results.json").read_text())
    assert "already holds a finished benchmark" in refused("--resume")
    # Stopped during round 2 of seed 4's federated run: its simulation has round 1 only
    # and no summary, and neither it nor the arms after it left a part.
    for name in ("results.json", "parts/supervised.json", "parts/seed-4/local_only.json"):
        (out / name).unlink()
    (out / "parts" / "seed-4" / "federated.json").unlink()
    run4 = out / "federated" / "seed-4"
    for name in ("summary.json", "encoder.pt", "checkpoints/round-0002.pt"):
        (run4 / name).unlink()
    round1 = _rows(run4)[0]
    (run4 / "metrics.jsonl").write_text(json.dumps(round1) + "\n")
    seed3_mtime = (out / "federated" / "seed-3" / "metrics.jsonl").stat().st_mtime_ns

    assert "--resume continues" in refused()
    assert "num-server-rounds: 2 -> 3" in refused("--rounds", "3", "--resume")
    assert not (out / "results.json").exists()

    proc = run_cli("benchmark", *QUICK, "--out", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((out / "results.json").read_text())
    assert after["by_seed"]["3"] == before["by_seed"]["3"]  # read back, not recomputed
    assert (out / "federated" / "seed-3" / "metrics.jsonl").stat().st_mtime_ns == seed3_mtime
    assert "reusing the finished seed-4/centralized" in proc.stderr
    # the stopped simulation was resumed: round 1 kept as it was, round 2 run
    assert f"resuming the stopped federated run in {run4}" in proc.stderr
    assert not list((out / "federated").glob("seed-4.stopped-*"))
    rows = _rows(run4)
    assert [r["round"] for r in rows] == [1, 2] and rows[0] == round1
    assert rows[1]["completed"] and (run4 / "checkpoints" / "round-0002.pt").is_file()
    assert after["seconds"]["federated"] > 0
    assert set(after["arms"]) == set(before["arms"])
    assert after["arms"]["supervised"].keys() == before["arms"]["supervised"].keys()


def test_the_curve_probes_fewer_rounds_with_curve_points(finished: Path) -> None:
    """``--curve-points 1`` probes round 0 and the last round only, and gets the same
    figures there as the benchmark's every-round curve."""
    from common.config import RunConfig
    from simulations.benchmark.arms import federated_curve

    cfg = RunConfig.from_flat({"dataset": "digits", "seed": 4})
    full = json.loads((finished / "results.json").read_text())["by_seed"]["4"]["curves"]
    thin = federated_curve(cfg, finished / "federated" / "seed-4", points=1)
    assert [c["round"] for c in thin] == [0, 2]
    assert [c["linear"] for c in thin] == pytest.approx([full["federated"][i][1] for i in (0, 2)])


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--fractions", "0,1.5"),
        ("--fractions", "a"),
        ("--pretrain-seeds", "1,1"),
        ("--pretrain-seeds", "x"),
        ("--seeds", "0;1"),
        ("--curve-points", "-1"),
    ],
)
def test_benchmark_refuses_bad_lists(
    tmp_path: Path,
    flag: str,
    value: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["benchmark", "--dataset", "digits", flag, value, "--out", str(tmp_path / "b")]
    code, err = run_main(argv, capsys, monkeypatch)
    assert code == 2, err[-2000:]
    assert flag in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()  # refused before any work


def _rows(run_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_stopped_benchmark_says_how_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import simulations.benchmark.arms

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(simulations.benchmark.arms, "run_arms", ctrl_c)
    out = tmp_path / "b"
    code, err = run_main(["benchmark", *QUICK, "--out", str(out)], capsys, monkeypatch)
    assert code == 130, err[-2000:]
    assert f"fedssl benchmark --resume --out {out}" in err and "Traceback" not in err
    assert err.rstrip().endswith("fedssl benchmark: stopped by SIGINT")
