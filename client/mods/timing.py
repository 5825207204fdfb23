"""Where a deployment round's time goes, as seen from the device.

Each message a SuperNode receives runs in a fresh ``flwr-clientapp`` process. This mod
records, per message: the SecAgg+ stage, how long the process had existed when the
ClientApp got the message (process start-up, imports, FAB install; a process forked
by ``client.task_forker`` starts when its task does), how long the handler took
(training, masking), and the process's CPU seconds and peak RSS. It appends one JSON line to
``STATE_DIR/timing.jsonl`` when the node has a ``state-dir``; nothing leaves the device.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable

from client.mods.secagg import secagg_stage


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), else None."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def timing_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    started = process_age_s()
    stage = secagg_stage(msg) or msg.metadata.message_type  # read now: the mods consume it
    t0 = time.perf_counter()
    try:
        return call_next(msg, ctxt)
    finally:
        state_dir = ctxt.node_config.get("state-dir")
        if state_dir:
            row = {
                "time": time.time(),
                "run": msg.metadata.run_id,
                "stage": stage,
                "startup_s": round(started, 3) if started is not None else None,
                "handler_s": round(time.perf_counter() - t0, 3),
                **_process_usage(),
            }
            with open(Path(str(state_dir)) / "timing.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


def _process_usage() -> dict[str, float]:
    """This task process's CPU seconds so far (imports included) and its peak RSS."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
    }
