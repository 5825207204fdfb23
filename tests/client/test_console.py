"""The device's console: Flower's routine lines stay in the log; one line per round."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from client.console import RoundReporter, evaluation_line, shows, training_line
from client.mods.timing import payload_bytes

# Lines as a Flower 1.42 SuperNode and its SuperExec print them (colour codes included).
ROUTINE = [
    "\x1b[92mINFO \x1b[0m:      Receiving: train message (ID: 4e974e770f0bbf47)",
    "\x1b[92mINFO \x1b[0m:      Sent successfully",
    "\x1b[92mINFO \x1b[0m:      ",
    "INFO:     Uvicorn running on http://127.0.0.1:48423 (Press CTRL+C to quit)",
    "Successfully installed fedssl to /tmp/c0/flwr-home/apps/fedssl.fedssl.0.1.0.7468df6b.",
    "\x1b[93mWARNING \x1b[0m:   EXPERIMENTAL: SuperExec authentication is experimental and may "
    "change in future releases.",
    "\x1b[91mERROR \x1b[0m:     Exit Code: 305",
    "[code: 2004] Failed to activate SuperNode.",
    "",
]
SHOWN = [
    "10:35:04 fedssl round 3: restored local state from /tmp/c0/client-state-1.bin",
    "\x1b[93mWARNING \x1b[0m:   Connection attempt failed, retrying in 2.3 seconds",
    "\x1b[91mERROR \x1b[0m:     Run ID 7 is not in `RUNNING` status.",
    "Traceback (most recent call last):",
]


def test_routine_flower_lines_are_not_shown_and_the_rest_is() -> None:
    assert [line for line in ROUTINE if shows(line)] == []
    assert all(shows(line) for line in SHOWN)


def _row(stage: str, rnd: int, t: float, **kw: Any) -> dict[str, Any]:
    row = {"time": t, "run": 1, "round": rnd, "stage": stage, "startup_s": 0.2,
           "handler_s": 0.3, "bytes_in": 100, "bytes_out": 50, "failed": False, "figures": {}}  # fmt: skip
    return {**row, **kw}


def _secagg_round(rnd: int, t0: float) -> list[dict[str, Any]]:
    figures = {"first-loss": 3.83, "train-loss": 3.7436, "steps": 18}
    return [
        _row("setup", rnd, t0 + 0.5),
        _row("share_keys", rnd, t0 + 1.5),
        _row(
            "collect_masked_vectors",
            rnd,
            t0 + 6.0,
            handler_s=2.9,
            bytes_in=1_491_840,
            bytes_out=2_983_680,
            figures=figures,
        ),  # fmt: skip
        _row("unmask", rnd, t0 + 8.0),
    ]


def test_a_training_round_is_one_line_with_loss_times_and_bytes() -> None:
    line = training_line(_secagg_round(3, 100.0))
    assert line.startswith("round 3: loss 3.8300 -> 3.7436 (18 steps)")
    # from the first task's start (100.0) to the last reply (108.0)
    assert "8.0 s here (setup 0.5 + keys 0.5 + train+mask 3.1 + unmask 0.5 s in tasks)" in line
    assert line.endswith(f"received {(1_491_840 + 300) / 1e6:.2f} MB, sent {2.98:.2f} MB")


def test_a_failed_stage_is_named() -> None:
    rows = _secagg_round(2, 0.0)[:3]
    rows[-1]["failed"] = True
    assert training_line(rows).startswith("round 2: failed in train+mask")


def test_an_evaluation_is_one_line_with_the_figures() -> None:
    row = _row("evaluate", 3, 10.0, handler_s=2.4, bytes_in=2_736_306,
               figures={"accuracy": 0.8215, "knn-accuracy": 0.709, "pretext-loss": 3.6368})  # fmt: skip
    assert evaluation_line(row) == (
        "round 3: global encoder received (2.74 MB); here: personal head 82.2%, kNN 70.9%, "
        "pretext loss 3.6368 | 2.6 s"
    )
    skipped = _row("evaluate", 3, 10.0, figures={"skipped": "too few labeled windows (2)"})
    assert "not evaluated: too few labeled windows (2)" in evaluation_line(skipped)


def test_the_reporter_follows_the_file_from_its_end_and_skips_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "timing.jsonl"
    old = _secagg_round(1, 0.0)  # an earlier run's rows: not reported again
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    lines: list[str] = []
    reporter = RoundReporter(path, lines.append)
    rows = [_row("query", 0, 9.0)] + _secagg_round(2, 10.0)
    with path.open("a") as fh:
        for row in rows[:3]:
            fh.write(json.dumps(row) + "\n")
        fh.write('{"time": 1')  # a task killed mid-write
        fh.write("\n" + json.dumps(rows[3]) + "\n" + json.dumps(rows[4])[:20])
    reporter.poll()
    assert lines == []  # the round's last stage is not complete yet
    with path.open("a") as fh:
        fh.write(json.dumps(rows[4])[20:] + "\n")
        fh.write(json.dumps(_row("evaluate", 2, 20.0, figures={"accuracy": 0.5})) + "\n")
    reporter.poll()
    assert len(lines) == 2, lines
    assert lines[0].startswith("round 2: loss") and "setup" in lines[0]
    assert lines[1].startswith("round 2: global encoder received")


def test_payload_bytes_count_arrays_and_byte_strings() -> None:
    content = RecordDict(
        {
            "w": ArrayRecord(
                {"a": Array(np.zeros(10, np.float32)), "b": Array(np.zeros(3, np.int64))}
            ),
            "c": ConfigRecord({"masked": [b"abcd", b"ef"], "stage": "unmask", "n": 3}),
        }
    )
    # Flower serialises each array as a .npy file: header + values
    npy = sum(len(_npy(a)) for a in (np.zeros(10, np.float32), np.zeros(3, np.int64)))
    assert payload_bytes(content) == npy + 6


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()
