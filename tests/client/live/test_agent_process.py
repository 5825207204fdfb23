"""The live agent as a process: frames on stdin (bad ones among them), decisions on
stdout, the store filled; and the options of `fedssl client --stream`."""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from delivered_encoder import deliver
from flwr.app import Context, RecordDict
from procfs import children, ended
from sklearn.datasets import load_digits

from client.live.agent_process import add_stream_arguments, check_stream_args
from client.live.frames import encode_frame
from client.live.window_store import WindowStore, read_store
from client.node_config import device_data, is_simulated
from common.data.errors import DataError
from common.environment import daemon_env
from common.errors import BadInputError


def test_the_agent_process_decides_on_stdin_frames_and_skips_bad_ones(tmp_path: Path) -> None:
    d = load_digits()
    x, y = (d.images / 16.0).astype(np.float32)[:, None], d.target
    state = tmp_path / "state"
    deliver(state, tmp_path, 0)  # an encoder is already there
    nan = x[0].copy()
    nan[0, 0, 0] = np.nan
    bad = [b"noise", encode_frame(nan), encode_frame(np.zeros(10, np.float32))]
    frames = [encode_frame(x[i], int(y[i])) for i in range(150)] + bad
    frames += [encode_frame(x[i], int(y[i])) for i in range(150, len(x))]
    argv = [sys.executable, "-m", "client.live.run", "--state-dir", str(state),
            "--stream", "stdin", "--window-shape", "1x8x8", "--actions", "10",
            "--labels-per-class", "3", "--echo", "--report-every", "1000"]  # fmt: skip
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=daemon_env(),
    )
    assert proc.stdin is not None
    log = state / "decisions.jsonl"
    for fed, frame in enumerate(frames, 1):  # a sensor's pace: the encoder is prepared meanwhile
        proc.stdin.write(frame)
        proc.stdin.flush()
        time.sleep(0.01)
        if fed >= 400 and log.exists() and len(log.read_bytes().splitlines()) >= 50:
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    done = subprocess.CompletedProcess(argv, 0, out, err)
    decisions = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(decisions) >= 50 and decisions[-1]["encoder_round"] == 0
    seen = fed - len(bad)  # the good windows sent
    err = done.stderr.decode()
    assert f"{seen} windows" in err and "3 bad frames skipped" in err, err[-2000:]
    stored_x, stored_y = read_store(state / "store")
    assert len(stored_x) == seen and np.isfinite(stored_x).all()
    np.testing.assert_array_equal(stored_y, y[:seen])


def _context(node_config: dict[str, str]) -> Context:
    return Context(run_id=1, node_id=1, node_config=node_config, state=RecordDict(), run_config={})


def test_a_live_device_trains_and_evaluates_on_its_store(tmp_path: Path) -> None:
    store = WindowStore(tmp_path / "store", (1, 8, 8), max_windows=100)
    ctx = _context({"store-dir": str(tmp_path / "store")})
    assert not is_simulated(ctx)
    with pytest.raises(DataError, match="empty"):
        device_data(ctx)
    for i in range(5):
        store.append(np.full((1, 8, 8), i, np.float32), label=i if i % 2 else None)
    x, y = device_data(ctx)
    assert x.shape == (5, 1, 8, 8) and y is not None and y.tolist() == [-1, 1, -1, 3, -1]
    store.close()


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="")
    add_stream_arguments(p)
    return p.parse_args(list(argv))


def test_stream_options_are_checked(tmp_path: Path) -> None:
    data = tmp_path / "d.npz"
    np.savez(data, x=np.zeros((4, 1, 8, 8), np.float32))
    assert check_stream_args(_args("--data", str(data))) is None
    cases = {
        (): "--data FILE, or --stream",
        ("--data", str(data), "--stream", "stdin"): "exclude each other",
        ("--stream", "stdin"): "--actions",
        ("--stream", "stdin", "--actions", "6"): "--window-shape",
        ("--stream", "stdin", "--actions", "6", "--window-shape", "6xA"): "sizes like 6x128",
        ("--stream", "tcp:1", "--actions", "6"): "npz:FILE or stdin",
        ("--stream", f"npz:{tmp_path / 'missing.npz'}", "--actions", "6"): "missing.npz",
    }
    for argv, message in cases.items():
        with pytest.raises(BadInputError, match=message):
            check_stream_args(_args(*argv))
    spec = check_stream_args(_args("--stream", f"npz:{data}", "--actions", "6", "--pace", "5"))
    assert (
        spec is not None
        and "--pace" in spec.argv
        and spec.argv[spec.argv.index("--pace") + 1] == "5.0"
    )


def _agent(state: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "client.live.run", "--state-dir", str(state),
            "--stream", "stdin", "--window-shape", "1x8x8", "--actions", "10",
            "--labels-per-class", "3", "--echo", *extra]  # fmt: skip
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=daemon_env(),
    )


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_an_agent_killed_mid_stream_resumes_deciding_at_once(tmp_path: Path) -> None:
    d = load_digits()
    x, y = (d.images / 16.0).astype(np.float32)[:, None], d.target
    state = tmp_path / "state"
    deliver(state, tmp_path, 0)
    proc = _agent(state, "--save-every", "0.2")
    assert proc.stdin is not None
    saved = state / "agent" / "state.pkl"
    fed, deadline = 0, time.monotonic() + 90
    # a paced sensor, until the agent has decided a while and saved what it learned
    while (fed < 300 or not saved.exists()) and fed < 1500 and time.monotonic() < deadline:
        proc.stdin.write(encode_frame(x[fed], int(y[fed])))
        proc.stdin.flush()
        fed += 1
        time.sleep(0.01)
    assert saved.exists()
    workers = children(proc.pid)
    assert workers  # the niced preparation worker (and multiprocessing's tracker)
    proc.kill()  # SIGKILL: no chance to save or close anything
    proc.wait()
    # its worker ends with it instead of waiting on the dead agent's queue forever
    assert ended(workers, within=20), f"left running: {workers}"
    logged = len((state / "decisions.jsonl").read_text().splitlines())
    assert logged > 0
    again = _agent(state)
    out, err = again.communicate(
        b"".join(encode_frame(x[i], int(y[i])) for i in range(fed, fed + 40)), timeout=120
    )
    assert again.returncode == 0, err.decode()[-2000:]
    decisions = [json.loads(line) for line in out.decode().splitlines()]
    # every window after the restart was decided, with the encoder it had before
    assert len(decisions) == 40 and {d["encoder_round"] for d in decisions} == {0}
    assert "resumed: deciding with the global encoder of round 0" in err.decode()
    x_stored, _ = read_store(state / "store")
    # every window it decided on before the kill is in the store, and the 40 after
    assert len(x_stored) >= logged + 40
    assert len((state / "decisions.jsonl").read_text().splitlines()) == logged + 40


def test_a_crashed_agent_is_restarted_and_an_ended_one_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from client.live.agent_process import AgentKeeper, StreamSpec

    # Fails on its first start, ends cleanly on the second (a marker file tells them apart).
    marker = tmp_path / "started-once"
    code = f"import pathlib, sys; m = pathlib.Path({str(marker)!r}); first = not m.exists(); m.touch(); sys.exit(3 if first else 0)"
    spec = StreamSpec("npz:x", [sys.executable, "-c", code])
    caplog.set_level(logging.INFO, logger="fedssl.client")
    monkeypatch.setattr(AgentKeeper, "RESTART_AFTER_S", 0.2)
    keeper = AgentKeeper(spec, tmp_path, daemon_env(), "dev")
    first = keeper.child.pid
    deadline = time.monotonic() + 30
    while "ended with its stream" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.2)
    keeper.stop()
    assert keeper.child.pid != first  # restarted once
    assert "exited with code 3" in caplog.text and "ended with its stream" in caplog.text
    assert caplog.text.count("restarting it") == 1
