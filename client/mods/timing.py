"""What each message cost the device, and what its handler did, for the device's own log.

Each message a SuperNode receives runs in a ClientApp task process of its own. This mod
(outermost, around every handler) records per message: the round and the SecAgg+ stage,
how long the process had existed when the ClientApp got the message (a process forked by
``client.task_forker`` starts when its task does), how long the handler took (training,
masking), the payload bytes in and out, the process's CPU seconds and peak RSS, and the
figures the handler noted (``note``: losses, steps, evaluation results). It appends one
JSON line to ``STATE_DIR/timing.jsonl`` when the node has a ``state-dir``; nothing here
leaves the device. ``fedssl client`` turns these rows into one console line per round
(``client.console``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from flwr.app import Context, Message, RecordDict
from flwr.clientapp.typing import ClientAppCallable

from client.mods.secagg import secagg_stage

TIMING_FILE = "timing.jsonl"
_notes: dict[str, Any] = {}


def note(**figures: Any) -> None:
    """Keep figures of the message being handled for its timing row (the device's log):
    what the handler computed that never leaves the device, such as its first loss."""
    _notes.update(figures)


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), else None."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def payload_bytes(content: RecordDict) -> int:
    """Bytes of the arrays (as serialised, .npy) and byte strings a message carries:
    its payload without the framing, such as the global weights in or a masked vector
    out."""
    total = sum(len(a.data) for rec in content.array_records.values() for a in rec.values())
    for rec in content.config_records.values():
        for value in rec.values():
            items = value if isinstance(value, list) else [value]
            total += sum(len(v) for v in items if isinstance(v, bytes))
    return total


def timing_mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
    started = process_age_s()
    # Read now: the mods inside consume the message.
    stage = secagg_stage(msg) or msg.metadata.message_type
    bytes_in = payload_bytes(msg.content) if msg.has_content() else 0
    _notes.clear()
    t0 = time.perf_counter()
    reply: Message | None = None
    try:
        reply = call_next(msg, ctxt)
        return reply
    finally:
        state_dir = ctxt.node_config.get("state-dir")
        if state_dir:
            failed = reply is None or reply.has_error()
            row = {
                "time": time.time(),
                "run": msg.metadata.run_id,
                "round": _round_of(msg),
                "stage": stage,
                "startup_s": round(started, 3) if started is not None else None,
                "handler_s": round(time.perf_counter() - t0, 3),
                "bytes_in": bytes_in,
                "bytes_out": 0 if failed else payload_bytes(reply.content),  # type: ignore[union-attr]
                "failed": failed,
                "figures": dict(_notes),
                **_process_usage(),
            }
            with open(Path(str(state_dir)) / TIMING_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")


def _round_of(msg: Message) -> int:
    """The server round a message belongs to (0: none, such as a query)."""
    group = str(msg.metadata.group_id or "0")
    return int(group) if group.isdigit() else 0


def _process_usage() -> dict[str, float]:
    """This task process's CPU seconds so far (imports included) and its peak RSS."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
    }
