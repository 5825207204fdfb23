"""``fedssl device``: replay one device's stream through the on-device runtime (docs/architecture.md, "The device loop").

    fedssl device --encoder runs/hapt-simclr-…/encoder.pt --user 22
    fedssl device --encoder enc.pt --user all --baselines --out runs/device
    fedssl device --encoder enc.pt --user 25 --rotate 90 --out runs/drill   # drift drill

For each stream (``simulations.device_replay.streams``): the first ``--labels-per-class`` labeled
windows of each class personalize the runtime (head, projection, drift reference, warm
bandit; ``client.runtime.device_loop``), the rest is replayed in time order, one
decision per window (``client.runtime.stream``). An ``encoder.pt`` runs through its
ONNX export by default (``--runtime onnx``, written to ``OUT/models``), keeping the
torch encoder for adaptation. ``--baselines`` replays the same stream with a
random-init encoder of the same architecture (seeded) and with raw per-channel
statistics (``client.runtime.raw``). Outputs: ``simulations.device_replay.report``.

Exit codes: 0 done; 2 bad input (missing or unreadable encoder, unknown user, a stream
of the wrong shape, bad option), reported before anything runs where possible.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import EXIT_OK
from simulations.device_replay.arms import DeviceCliError, build_arms

HAPT_PACE_S = 1.28  # HAPT: 128-sample windows every 64 samples at 50 Hz
DEFAULT_PACE_S = 0.05

log = logging.getLogger("fedssl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--encoder", required=True, metavar="PATH", help="encoder.pt, or an export (.onnx, .ts)"
    )
    p.add_argument(
        "--torch-encoder",
        default="",
        metavar="PATH",
        help="the encoder.pt an export came from (makes encoder adaptation possible)",
    )
    p.add_argument(
        "--dataset", default="hapt", help="hapt | digits | fmnist | npz:PATH (default: %(default)s)"
    )
    p.add_argument(
        "--stream",
        default="",
        metavar="npz:PATH",
        help="replay this .npz (x, y in time order) instead of --dataset",
    )
    p.add_argument(
        "--user",
        default="",
        metavar="N|all",
        help="device (client id) to replay: N, N,M or all (HAPT users 22-30); HAPT default 22",
    )
    p.add_argument(
        "--labels-per-class",
        type=int,
        default=10,
        help="labeled windows per class the device starts with (default: %(default)s)",
    )
    p.add_argument(
        "--policy",
        choices=("linucb", "thompson", "random"),
        default="linucb",
        help="contextual bandit (default: %(default)s)",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also replay with a random-init encoder and with raw features",
    )
    p.add_argument(
        "--runtime",
        choices=("onnx", "eager"),
        default="onnx",
        help="how an encoder.pt runs: its ONNX export or eager PyTorch (default: %(default)s)",
    )
    p.add_argument(
        "--on-drift",
        choices=("adapt", "refit", "none"),
        default="adapt",
        help="response to a drift alarm (default: %(default)s)",
    )
    p.add_argument(
        "--adapt-steps",
        type=int,
        default=30,
        help="pretext-loss steps per adaptation; 0 = refit only (default: %(default)s)",
    )
    p.add_argument(
        "--adapt-lr",
        type=float,
        default=1e-4,
        help="adaptation learning rate, Adam (default: %(default)s)",
    )
    p.add_argument(
        "--buffer", type=int, default=256, help="replay buffer, windows (default: %(default)s)"
    )
    p.add_argument(
        "--adapt-after",
        type=int,
        default=32,
        help="windows collected after an alarm before adapting (default: %(default)s)",
    )
    p.add_argument(
        "--drift-threshold",
        type=float,
        default=12.0,
        help="CUSUM threshold of the drift detector (default: %(default)s)",
    )
    p.add_argument(
        "--proj-dim", type=int, default=32, help="bandit context width (default: %(default)s)"
    )
    p.add_argument(
        "--no-warm-start",
        action="store_true",
        help="do not warm-start the bandit from the labeled windows",
    )
    p.add_argument(
        "--rotate",
        type=float,
        default=0.0,
        metavar="DEG",
        help="drift drill: rotate the sensor by DEG degrees from --rotate-at on",
    )
    p.add_argument(
        "--rotate-axis",
        choices=("x", "y", "z"),
        default="z",
        help="rotation axis (default: %(default)s)",
    )
    p.add_argument(
        "--rotate-at",
        type=float,
        default=0.5,
        help="fraction of the replayed stream where the rotation starts (default: %(default)s)",
    )
    p.add_argument(
        "--pace",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"window spacing while an adaptation runs (default: {HAPT_PACE_S} for hapt, the real one; else {DEFAULT_PACE_S})",
    )
    p.add_argument(
        "--max-steps", type=int, default=0, help="replay at most N windows per stream; 0 = all"
    )
    p.add_argument(
        "--log-every",
        type=int,
        default=100,
        help="progress line every N steps (default: %(default)s)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the random-init encoder, Thompson sampling, adaptation",
    )
    p.add_argument("--out", default="", metavar="DIR", help="output folder (default: runs/device-TIME)")  # fmt: skip


def runtime_config(args: argparse.Namespace) -> Any:
    from client.runtime.adaptation import AdaptConfig
    from client.runtime.device_loop import RuntimeConfig

    return RuntimeConfig(
        policy=args.policy,
        proj_dim=args.proj_dim,
        warm_start=not args.no_warm_start,
        on_drift=args.on_drift,
        drift_threshold=args.drift_threshold,
        adapt_after=args.adapt_after,
        buffer_size=args.buffer,
        adapt=AdaptConfig(steps=args.adapt_steps, lr=args.adapt_lr, seed=args.seed),
        seed=args.seed,
    )


def _shift_figures(result: Any, shift: int | None) -> dict[str, Any]:
    """Reward before and after the rotation, and how soon drift fired after it."""
    if shift is None:
        return {}
    rewards = np.array([s.reward for s in result.steps])
    after = [a for a in result.alarms if a >= shift]
    swaps = [e.swap_step for e in result.events if e.swap_step is not None and e.swap_step >= shift]
    post_swap = rewards[swaps[0] :] if swaps else np.zeros(0)
    return {
        "shift_step": shift,
        "reward_rate_before_shift": float(rewards[:shift].mean()) if shift else None,
        "reward_rate_after_shift": float(rewards[shift:].mean()),
        "drift_delay": after[0] - shift if after else None,
        "reward_rate_after_first_swap": float(post_swap.mean()) if len(post_swap) else None,
    }


def replay(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run every stream through every arm; write everything; return the top summary."""
    from simulations.device_replay import report
    from simulations.device_replay.streams import check_fraction, load_streams, parse_users

    spec = args.stream or args.dataset
    if args.stream and not args.stream.startswith("npz:"):
        raise DeviceCliError(f"--stream {args.stream!r}: expected npz:PATH")
    if args.max_steps < 0 or args.log_every < 0:
        raise DeviceCliError("--max-steps and --log-every must be >= 0")
    check_fraction(args.rotate_at)
    cfg = runtime_config(args)
    streams = load_streams(spec, parse_users(args.user))
    shape = tuple(int(s) for s in streams[0].x.shape[1:])
    arms = build_arms(args, shape, out / "models")
    pace = (
        args.pace if args.pace is not None else (HAPT_PACE_S if spec == "hapt" else DEFAULT_PACE_S)
    )
    many_arms, many_streams = len(arms) > 1, len(streams) > 1
    by_arm: dict[str, list[Any]] = {a.name: [] for a in arms}
    for stream in streams:
        calib, xs, ys, shift = _prepared(args, stream)
        stream_dir = out / stream.name if many_streams else out
        summaries: dict[str, dict[str, Any]] = {}
        for arm in arms:
            name = f"{stream.name}/{arm.name}" if many_arms else stream.name
            result = _replay_arm(arm, stream, calib, xs, ys, cfg, pace, args.log_every, name)
            result.extra = {
                "arm": arm.name,
                "encoder": arm.description,
                "stream": stream.description,
                "on_drift": cfg.on_drift,
                **_shift_figures(result, shift),
            }
            s = report.write_run(result, stream_dir / arm.name if many_arms else stream_dir)
            summaries[arm.name] = s
            by_arm[arm.name].append(result)
            log.info(
                "%s: reward %.0f/%d (%.1f%%), head accuracy %.1f%%, latency p50 %.3f / p99 %.3f ms",
                name, s["cumulative_reward"], s["decisions"], 100 * s["reward_rate"],
                100 * s["head_accuracy"], s["latency_ms"]["p50"], s["latency_ms"]["p99"],
            )  # fmt: skip
        if many_arms:
            runs = {a: [by_arm[a][-1]] for a in by_arm}
            report.plot_comparison(runs, stream_dir / "comparison.png", stream.description)
            (stream_dir / "comparison.md").write_text(report.comparison_table(summaries))
            report.write_json(stream_dir / "summary.json", summaries)
    if not many_streams:
        return summaries if many_arms else summaries[arms[0].name]
    return report.write_streams(by_arm, out, f"{len(streams)} streams of {spec}, {args.policy}")


def _prepared(
    args: argparse.Namespace, stream: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """The calibration windows, the windows to replay (capped, maybe rotated) and where
    the rotation starts."""
    from simulations.device_replay.streams import calibration_split, rotate_sensor

    calib, rest = calibration_split(stream.y, args.labels_per_class)
    xs, ys = stream.x[rest], stream.y[rest]
    if args.max_steps:
        xs, ys = xs[: args.max_steps], ys[: args.max_steps]
    shift = None
    if args.rotate:
        shift = int(len(xs) * args.rotate_at)
        xs = np.concatenate([xs[:shift], rotate_sensor(xs[shift:], args.rotate, args.rotate_axis)])
    log.info(
        "%s: %d labeled windows (%d per class) personalize, %d replayed%s",
        stream.description,
        len(calib),
        args.labels_per_class,
        len(xs),
        f", rotated {args.rotate:g}° about {args.rotate_axis} from step {shift}"
        if shift is not None
        else "",
    )
    return calib, xs, ys, shift


def _replay_arm(
    arm: Any,
    stream: Any,
    calib: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    cfg: Any,
    pace: float,
    log_every: int,
    name: str,
) -> Any:
    """Personalize one arm's runtime on the calibration windows, then replay the stream."""
    from client.runtime.stream import run_stream

    with arm.make(stream.n_actions, cfg) as rt:
        fit = rt.fit_head(stream.x[calib], stream.y[calib])
        log.info(
            "%s: head fitted on %d labels in %.1f ms (calibration %.0f ms, bandit context %d dims)",
            name, fit.labels, fit.head_seconds * 1e3, fit.seconds * 1e3, fit.proj_dim,
        )  # fmt: skip
        return run_stream(rt, xs, ys, pace_s=pace, log_every=log_every, name=name)


def run(args: argparse.Namespace) -> int:
    from common.logs import setup_logging

    setup_logging()
    out = Path(args.out or f"runs/device-{time.strftime('%Y%m%d-%H%M%S')}")
    t0 = time.perf_counter()
    replay(args, out)  # bad input rises to the CLI (exit 2)
    print(f"fedssl device: wrote {out} in {time.perf_counter() - t0:.1f} s", flush=True)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m simulations.device_replay.cli ...``: the sub-command without the ``fedssl`` entry point."""
    from common.cli import main as fedssl

    return fedssl(["device", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
