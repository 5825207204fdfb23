"""The device loop decides on a whole stream, personalizes fast, and adapts to drift in the
background while decisions go on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import client.runtime.rebuild as rebuild
from client.export import export_encoder
from client.runtime.adaptation import AdaptConfig, AdaptError
from client.runtime.device_loop import DeviceError, DeviceRuntime, RuntimeConfig
from client.runtime.encoders import EmbedError
from client.runtime.stream import run_stream
from common.models.registry import build_encoder, default_arch_for
from common.serialize import load_encoder, save_encoder
from simulations.device_replay.streams import calibration_split, rotate_sensor

Stream = Callable[..., tuple[np.ndarray, np.ndarray]]
K, SHAPE = 4, (6, 32)  # the synthetic stream of tests/client/conftest.py
FAST_ADAPT = AdaptConfig(steps=4, warmup_steps=2, batch_size=32)
DRILL = RuntimeConfig(buffer_size=64, adapt_after=8, adapt=FAST_ADAPT)
SHIFT = 150


def _personalized(
    path: Path, x: np.ndarray, y: np.ndarray, cfg: RuntimeConfig | None = None, **load: Any
) -> tuple[DeviceRuntime, np.ndarray]:
    """A runtime fitted on the first 10 windows per class; the indices left to replay."""
    calib, rest = calibration_split(y, 10)
    rt = DeviceRuntime.load(path, K, cfg, **load)
    rt.fit_head(x[calib], y[calib])
    return rt, rest


def _rotated_stream(make_stream: Stream, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """400 windows; of those left after calibration, the ones from SHIFT on are rotated 90°."""
    x, y = make_stream(400, seed)
    calib, rest = calibration_split(y, 10)
    x = x.copy()
    x[rest[SHIFT:]] = rotate_sensor(x[rest[SHIFT:]], 90, "z")
    return x, y


def test_stream_end_to_end_records_every_decision(tiny_encoder: Path, make_stream: Stream) -> None:
    x, y = make_stream(260, 1)
    rt, rest = _personalized(tiny_encoder, x, y, RuntimeConfig(on_drift="none"))
    res = run_stream(rt, x[rest], y[rest], log_every=0)
    s = res.summary()
    n = len(rest)
    assert s["decisions"] == n == len(res.steps)
    assert [r.step for r in res.steps] == list(range(n))
    assert all(r.reward == float(r.action == r.label) for r in res.steps)
    assert (
        s["cumulative_reward"]
        == res.steps[-1].cumulative_reward
        == sum(r.reward for r in res.steps)
    )
    assert s["regret"] == n - s["cumulative_reward"]
    assert all(0 < r.embed_us <= r.latency_us for r in res.steps)
    assert s["latency_ms"]["n"] == n and 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p99"]
    assert s["labeled_windows"] == 10 * K and s["head_accuracy"] > 0.8
    assert s["reward_rate"] > 0.6  # the warm bandit on a random-init encoder; chance is 0.25
    # and it can fail: the same stream with uniformly random actions
    rand, _ = _personalized(tiny_encoder, x, y, RuntimeConfig(policy="random", on_drift="none"))
    assert run_stream(rand, x[rest], y[rest], log_every=0).summary()["reward_rate"] < 0.45


def test_head_fit_with_ten_labels_per_class_is_fast(tmp_path: Path) -> None:
    shape = (6, 128)  # the HAPT encoder, 256-dim embeddings, 6 classes
    torch.manual_seed(0)
    arch, hparams = default_arch_for(shape)
    path = tmp_path / "hapt.pt"
    save_encoder(path, build_encoder(arch, **hparams), arch, hparams, {"input_shape": list(shape)})
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(6), 10)
    x = (rng.standard_normal((60, *shape)) + y[:, None, None]).astype(np.float32)
    rt = DeviceRuntime.load(path, 6)
    fit = rt.fit_head(x, y)
    assert fit.labels == 60 and fit.classes == list(range(6))
    assert fit.head_seconds < 1.0  # tens of ms; generous for a busy machine
    assert fit.proj_dim == 32 and fit.drift_reference == 60


def test_drift_adapts_the_encoder_in_the_background_and_swaps_it_in(
    tiny_encoder: Path, make_stream: Stream
) -> None:
    x, y = _rotated_stream(make_stream)
    rt, rest = _personalized(tiny_encoder, x, y, DRILL)
    before = {k: v.clone() for k, v in rt.torch_encoder.state_dict().items()}
    first_embedder = rt.embedder
    res = run_stream(rt, x[rest], y[rest], pace_s=0.02, log_every=0)
    assert res.alarms and res.alarms[0] >= SHIFT, res.alarms  # quiet until the rotation
    ev = res.events[0]
    assert ev.alarm_step < SHIFT + 40 and ev.start_step == ev.alarm_step + 1 + DRILL.adapt_after
    assert ev.mode == "adapt" and ev.status == "swapped", ev
    assert ev.swap_step is not None and ev.decisions_during == ev.swap_step - ev.start_step >= 1
    assert all(res.steps[i].adapting for i in range(ev.start_step, ev.swap_step))
    assert ev.train_steps > 0 and np.isfinite([ev.loss_before, ev.loss_after]).all()
    # the decisions made meanwhile were replayed into the new bandit (as many as the buffer holds)
    assert ev.catch_up == min(ev.decisions_during, DRILL.buffer_size) and ev.swap_ms is not None
    # the adapted encoder is the one deciding now, and it is not the file's
    assert rt.embedder is not first_embedder
    after = rt.torch_encoder.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    original = load_encoder(tiny_encoder).state_dict()
    assert all(torch.equal(original[k], before[k]) for k in before)  # trained on a copy
    rt.close()


def test_decisions_continue_while_the_job_runs(
    tiny_encoder: Path, make_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job is held until 5 decisions were made during it: they happen, and the new
    bandit replays them at the swap."""
    release = threading.Event()
    real = rebuild.adapt_encoder

    def held(*args: Any, **kwargs: Any) -> Any:
        assert release.wait(20), "the decision loop stalled while the job ran"
        return real(*args, **kwargs)

    monkeypatch.setattr(rebuild, "adapt_encoder", held)
    x, y = _rotated_stream(make_stream)
    rt, rest = _personalized(tiny_encoder, x, y, DRILL)
    stream = iter(rest)

    def step() -> None:
        i = next(stream)
        rt.maintain()
        a = rt.decide(x[i])
        rt.update(x[i], a, float(a == y[i]))

    while not rt.adapting:
        step()
    launched = rt.steps - 1  # maintain() started it before this step's decision
    for _ in range(5):
        step()
        assert rt.adapting
    release.set()
    deadline = time.monotonic() + 20
    while rt.events[0].status == "running" and time.monotonic() < deadline:
        time.sleep(0.01)
        rt.maintain()
    ev = rt.events[0]
    assert ev.status == "swapped" and ev.start_step == launched
    assert ev.decisions_during == 6 and ev.catch_up == 6  # 1 + 5, all replayed at the swap
    rt.close()


def test_a_failed_job_is_reported_and_the_old_model_keeps_deciding(
    tiny_encoder: Path, make_stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise FloatingPointError("non-finite pretext loss")

    monkeypatch.setattr(rebuild, "adapt_encoder", broken)
    x, y = _rotated_stream(make_stream)
    rt, rest = _personalized(tiny_encoder, x, y, DRILL)
    first = rt.embedder
    res = run_stream(rt, x[rest], y[rest], pace_s=0.01, log_every=0)
    assert len(res.steps) == len(rest) and res.events
    assert all(e.status.startswith("failed: FloatingPointError") for e in res.events)
    assert rt.embedder is first
    rt.close()


def test_an_onnx_runtime_refits_alone_or_adapts_with_its_torch_encoder(
    tiny_encoder: Path, make_stream: Stream, tmp_path: Path
) -> None:
    onnx = tmp_path / "encoder.onnx"
    export_encoder(tiny_encoder, None, onnx, input_shape=SHAPE)
    x, y = _rotated_stream(make_stream)
    alone, rest = _personalized(onnx, x, y, DRILL)
    res = run_stream(alone, x[rest], y[rest], pace_s=0.02, log_every=0)
    assert res.runtime == "onnx" and res.events
    assert res.events[0].mode == "refit" and "no torch encoder" in res.events[0].note
    assert res.events[0].loss_before is None
    alone.close()
    paired, _ = _personalized(onnx, x, y, DRILL, torch_encoder_path=tiny_encoder)
    first = paired.embedder
    res = run_stream(paired, x[rest], y[rest], pace_s=0.02, log_every=0)
    swapped = [e for e in res.events if e.status == "swapped"]
    assert swapped and swapped[0].mode == "adapt"
    assert paired.embedder.kind == "onnx" and paired.embedder is not first  # re-exported
    paired.close()


def test_an_onnx_runtime_adapts_in_a_worker_process(
    tiny_encoder: Path, make_stream: Stream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a process pool, the adaptation trains in the worker (a spawned process, as
    the live agent's), and the swapped-in model is the worker's re-exported ONNX."""

    def not_here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("adapted in the deciding process")

    monkeypatch.setattr(rebuild, "adapt_encoder", not_here)  # the worker has its own
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from client.live.preparation import warm_up

    onnx = tmp_path / "encoder.onnx"
    export_encoder(tiny_encoder, None, onnx, input_shape=SHAPE)
    x, y = _rotated_stream(make_stream)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        pool.submit(warm_up).result()  # as the agent does at its start
        calib, rest = calibration_split(y, 10)
        rt = DeviceRuntime.load(onnx, K, DRILL, torch_encoder_path=tiny_encoder)
        rt._worker = pool  # noqa: SLF001 (load() has no worker argument)
        rt.fit_head(x[calib], y[calib])
        first = rt.embedder
        # Decide on the stream, then on its drifted part again, until the job swaps in
        # (however slow the worker is on a busy machine).
        order = list(rest) + [int(i) for i in rest[SHIFT:]] * 20
        deadline = time.monotonic() + 180
        for idx in order:
            rt.maintain()
            action = rt.decide(x[idx])
            rt.update(x[idx], action, float(action == y[idx]))
            if any(e.status == "swapped" for e in rt.events) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        swapped = [e for e in rt.events if e.status == "swapped"]
        assert swapped and swapped[0].mode == "adapt" and swapped[0].train_steps > 0
        assert swapped[0].loss_before is not None and swapped[0].loss_after is not None
        assert rt.embedder.kind == "onnx" and rt.embedder is not first
        assert str(rt.embedder.path).startswith(str(rt._workdir))  # noqa: SLF001
        rt.close()


def test_no_response_records_alarms_only(tiny_encoder: Path, make_stream: Stream) -> None:
    x, y = _rotated_stream(make_stream)
    rt, rest = _personalized(tiny_encoder, x, y, RuntimeConfig(on_drift="none"))
    res = run_stream(rt, x[rest], y[rest], log_every=0)
    assert res.alarms and not res.events
    assert sum(r.drift for r in res.steps) == len(res.alarms)


def test_bad_inputs_are_refused_clearly(
    tiny_encoder: Path, make_stream: Stream, tmp_path: Path
) -> None:
    x, y = make_stream(120, 2)
    with pytest.raises(EmbedError, match="no such encoder file"):
        DeviceRuntime.load(tmp_path / "missing.pt", K)
    with pytest.raises(DeviceError, match="no such encoder file"):
        DeviceRuntime.load(tiny_encoder, K, torch_encoder_path=tmp_path / "missing.pt")
    rt = DeviceRuntime.load(tiny_encoder, K)
    with pytest.raises(DeviceError, match="fit_head"):
        rt.decide(x[0])
    with pytest.raises(DeviceError, match=r"actions in \[0, 4\)"):
        rt.fit_head(x[:40], np.full(40, 7))
    with pytest.raises(EmbedError, match="shape"):
        rt.fit_head(x[:40, :5], y[:40])
    rt, rest = _personalized(tiny_encoder, x, y)
    with pytest.raises(DeviceError, match=r"stream windows have shape \(5, 32\)"):
        run_stream(rt, x[rest][:, :5], y[rest])
    with pytest.raises(DeviceError, match="integer labels"):
        run_stream(rt, x[rest], y[rest][:-1])
    with pytest.raises(DeviceError, match="one window"):
        rt.decide(x[:2])
    with pytest.raises(DeviceError, match="unknown policy"):
        RuntimeConfig(policy="greedy")
    with pytest.raises(AdaptError, match="unknown SSL method"):
        AdaptConfig(method="moco")
