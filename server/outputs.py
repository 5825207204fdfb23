"""The run folder: config, one JSON line per round, checkpoints, final encoder, summary.

Later tools rely on this layout (README "Output folder"); every file is written
atomically so a killed server leaves the last complete state, not a torn file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from common.atomic import atomic_write_bytes
from common.config import ConfigError
from server.round_outcome import RoundOutcome

METRICS_FILE = "metrics.jsonl"
RUN_FILES = (METRICS_FILE, "summary.json", "encoder.pt", "config.json")


class RunOutputs:
    def __init__(self, out_dir: str | Path, *, resume: bool = False) -> None:
        self.dir = Path(out_dir).expanduser().resolve()
        self.metrics_path = self.dir / METRICS_FILE
        self.rows: list[dict[str, Any]] = []
        if resume:
            self._open_existing()
            return
        if any(_holds_data(self.dir / name) for name in RUN_FILES):
            raise ConfigError(
                f"out-dir {self.dir} already holds a run; choose a new folder so that no "
                "result is mixed with or overwrites another (or resume it)"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "checkpoints").mkdir(exist_ok=True)
        self.metrics_path.write_text("")  # a new run starts a new record

    def _open_existing(self) -> None:
        if not (self.dir / "config.json").is_file():
            raise ConfigError(f"resume: {self.dir} holds no run to continue (no config.json)")
        if (self.dir / "summary.json").exists():
            raise ConfigError(f"resume: the run in {self.dir} has already finished")
        (self.dir / "checkpoints").mkdir(exist_ok=True)
        self.rows, torn = _parse_rows(self.metrics_path)
        if torn:  # rounds after a killed server's torn last line are redone
            self.truncate(self.rows[-1]["round"] if self.rows else 0)

    def truncate(self, last_round: int) -> None:
        """Forget rounds after ``last_round`` (their checkpoint was lost or corrupt)."""
        self.rows = [r for r in self.rows if r["round"] <= last_round]
        text = "".join(json.dumps(r, default=_jsonable) + "\n" for r in self.rows)
        atomic_write_bytes(self.metrics_path, text.encode())

    def read_json(self, name: str) -> Any:
        return json.loads((self.dir / name).read_text())

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())
        return path

    def append_round(self, outcome: RoundOutcome, **extra: Any) -> dict[str, Any]:
        row = {
            "round": outcome.round,
            "secure_aggregation": extra.pop("secure_aggregation"),
            "completed": outcome.completed,
            "clients_sampled": outcome.clients_sampled,
            "clients_aggregated": outcome.clients_aggregated,
            "clients_failed": outcome.clients_failed,
            "train_loss": outcome.train_loss,
            "delta_norm": outcome.delta_norm,
            "clipped_values": outcome.clipped_values,
            "reason": outcome.reason,
            **extra,
        }
        if outcome.dp_clipped is not None:  # central DP on (clipping, maybe noise)
            row["dp_clipped"] = outcome.dp_clipped
            row["dp_noise_std"] = outcome.dp_noise_std
            row["dp_sampling_rate"] = outcome.dp_sampling_rate
            row["dp_epsilon"] = outcome.dp_epsilon
        if outcome.failures:
            row["failures"] = outcome.failures
        if outcome.secagg_seconds:
            row["secagg_seconds"] = outcome.secagg_seconds
        self.rows.append(row)
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, default=_jsonable) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return row

    def checkpoint_path(self, server_round: int) -> Path:
        return checkpoint_path(self.dir, server_round)


def checkpoint_path(run_dir: Path, server_round: int) -> Path:
    """Where a run keeps the global model after ``server_round`` (0: the initial one)."""
    return run_dir / "checkpoints" / f"round-{server_round:04d}.pt"


def round_checkpoints(run_dir: Path) -> dict[int, Path]:
    """A run folder's checkpoints by round, in round order."""
    found = {int(p.stem.split("-")[1]): p for p in (run_dir / "checkpoints").glob("round-*.pt")}
    return dict(sorted(found.items()))


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """A run folder's ``metrics.jsonl``, one dict per round, read only (the run may still
    be writing it): the rows before a torn last line; none when there is no file."""
    return _parse_rows(run_dir / METRICS_FILE)[0]


def _parse_rows(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The rows up to the first that does not parse, and whether one did not (torn)."""
    if not path.exists():
        return [], False
    lines = path.read_text().splitlines()
    rows: list[dict[str, Any]] = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows, len(rows) < len([x for x in lines if x.strip()])


def _holds_data(path: Path) -> bool:
    """An empty metrics file is what a server killed before round 1 leaves: not a run."""
    return path.exists() and (path.name != "metrics.jsonl" or path.stat().st_size > 0)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
