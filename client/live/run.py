"""The live agent's process: ``fedssl client --stream SOURCE`` starts it beside the SuperNode.

    python -m client.live.run --state-dir DIR --stream npz:FILE --pace 10 --actions 6
    sensor | python -m client.live.run --state-dir DIR --stream stdin --window-shape 6x128 ...

It reads the stream (``client.live.frames``), runs ``LiveAgent`` on every good window,
and logs a progress line every ``--report-every`` seconds: windows, decisions, reward
rate, decision p50/p99, swaps, skipped frames, store size. It runs at its own priority;
federated training runs in the device's task processes, which ``fedssl client`` starts
niced. On SIGTERM or at the end of the stream it logs a summary and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import numpy as np

from client.live.agent import AgentSettings, LiveAgent
from client.live.frames import Frame, FrameReader, replay_npz
from client.live.preparation import AGENT_FOLDER
from common.errors import EXIT_ERROR, EXIT_OK, BadInputError

log = logging.getLogger("fedssl.client")


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise BadInputError(f"--window-shape: expected sizes like 6x128, got {text!r}")
    return shape


Frames = Callable[[int], Iterator[Frame]]  # the stream from the window after N seen ones


def stream_source(
    spec: str, pace: float, shape_text: str
) -> tuple[Frames, tuple[int, ...], FrameReader | None]:
    """The frames of ``--stream``, the window shape, and the reader that counts bad
    frames. A replayed file goes on after the windows the device has stored (a restart
    resumes it); a live sensor's stdin is whatever comes next."""
    if spec.startswith("npz:"):
        from common.data.registry import load_dataset

        path = Path(spec[4:]).expanduser()
        shape = tuple(load_dataset(f"npz:{path}").x.shape[1:])  # DataError names the problem
        return (lambda seen: replay_npz(path, pace, seen)), shape, None
    if spec == "stdin":
        if not shape_text:
            raise BadInputError("--stream stdin needs --window-shape (e.g. 6x128)")
        shape = parse_shape(shape_text)
        reader = FrameReader(sys.stdin.buffer, shape)
        return (lambda seen: iter(reader)), shape, reader
    raise BadInputError(f"--stream: expected npz:FILE or stdin, got {spec!r}")


def summary(agent: LiveAgent, reader: FrameReader | None) -> str:
    c = agent.counts
    lat = np.asarray(c.latencies_ms[-5000:]) if c.latencies_ms else np.zeros(1)
    rewards = f"{c.rewarded / c.decisions:.3f}" if c.decisions else "-"
    skipped = reader.counts.bad if reader is not None else 0
    return (
        f"stream: {c.windows} windows, {c.decisions} decisions (reward rate {rewards}), "
        f"p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms, "
        f"{c.swaps} encoder swaps, {skipped} bad frames skipped, store {len(agent.store)} "
        f"windows ({agent.store.disk_bytes() / 1e6:.1f} MB)"
    )


def main(argv: list[str] | None = None) -> int:
    from common.logs import setup_logging

    p = argparse.ArgumentParser(prog="python -m client.live.run", description=__doc__)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--stream", required=True)
    p.add_argument("--pace", type=float, default=10.0)
    p.add_argument("--window-shape", default="")
    p.add_argument("--actions", type=int, required=True)
    p.add_argument("--labels-per-class", type=int, default=10)
    p.add_argument("--store-max-windows", type=int, default=10_000)
    p.add_argument("--echo", action="store_true")
    p.add_argument("--report-every", type=float, default=30.0)
    p.add_argument("--save-every", type=float, default=30.0)
    args = p.parse_args(argv)
    setup_logging()

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(EXIT_OK)  # out of a blocking read too; the summary still runs

    signal.signal(signal.SIGTERM, on_term)
    try:
        open_frames, shape, reader = stream_source(args.stream, args.pace, args.window_shape)
        settings = AgentSettings(
            state_dir=Path(args.state_dir),
            n_actions=args.actions,
            labels_per_class=args.labels_per_class,
            store_max_windows=args.store_max_windows,
            echo=args.echo,
            save_every_s=args.save_every,
        )
        agent = LiveAgent(settings, shape)
    except BadInputError as exc:
        log.error("%s", exc)
        return EXIT_ERROR
    seen = agent.store.seen()
    frames = open_frames(seen)
    if seen and reader is None:
        log.info("replay resumes after the %d windows already stored", seen)
    last = time.monotonic()
    try:
        for frame in frames:
            agent.step(frame)
            if time.monotonic() - last >= args.report_every:
                last = time.monotonic()
                log.info("%s", summary(agent, reader))
    finally:
        log.info("%s", summary(agent, reader))
        agent.close()
        write_counts(agent, reader)
    return EXIT_OK


def write_counts(agent: LiveAgent, reader: FrameReader | None) -> None:
    """``STATE_DIR/agent/counts.json``: what this run of the agent did (benchmarks read it)."""
    import json

    from common.atomic import atomic_write_bytes

    c = agent.counts
    counts = {
        "windows": c.windows,
        "decisions": c.decisions,
        "waiting": c.waiting,
        "missed": c.windows - c.waiting - c.decisions,
        "swaps": c.swaps,
        "failed_swaps": c.failed_swaps,
        "swap_ms": c.swap_ms,
        "bad_frames": reader.counts.bad if reader is not None else 0,
        "store_windows": len(agent.store),
        "store_bytes": agent.store.disk_bytes(),
    }
    path = agent.settings.state_dir / AGENT_FOLDER / "counts.json"
    path.parent.mkdir(exist_ok=True, mode=0o700)
    atomic_write_bytes(path, json.dumps(counts).encode())


if __name__ == "__main__":
    sys.exit(main())
