"""Continue a run from its output folder after the server was stopped or killed.

The folder is the run's whole memory: ``config.json``, one line per round in
``metrics.jsonl`` and a checksummed checkpoint of the shared state after every
completed round. A resumed run starts after the last recorded round, from the newest
checkpoint that verifies; a corrupt or truncated checkpoint is skipped (with a
warning naming it) and the rounds after the previous good one are redone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.config import ConfigError, RunConfig
from common.serialize import CheckpointError, checkpoint_shared_arrays
from server.outputs import RunOutputs

log = logging.getLogger("fedssl.server")

RESOLVED_CLIENTS = "resolved-clients"  # config.json's one key that is not a run-config key

# Keys a resumed run may change: where it lives, how long it runs, how it tolerates
# failures, how many devices it waits for. Anything else would mix two different experiments in one record.
MUTABLE_KEYS = {
    "resume",
    "out-dir",
    "num-server-rounds",
    "max-failed-rounds",
    "secagg-timeout",
    "num-clients",  # devices may join a deployment between restarts
}


@dataclass(frozen=True)
class ResumePoint:
    next_round: int  # the first round to run
    arrays: list[np.ndarray]  # the global shared state to start it from
    checkpoint_round: int  # the round whose checkpoint provided ``arrays``


def unfinished_run_config(out: Path) -> dict[str, Any] | None:
    """The run-config keys of the unfinished run in ``out``; None when ``out`` holds no
    run. A finished run is refused: its record is complete."""
    if (out / "summary.json").exists():
        raise ConfigError(f"--out {out} holds a finished run; choose a new folder")
    path = out / "config.json"
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the run's config ({exc})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: not a JSON object of run-config keys")
    saved.pop(RESOLVED_CLIENTS, None)
    return saved


def check_same_run(saved: dict[str, object], cfg: RunConfig) -> None:
    """Refuse a resumed config that changes any key but ``MUTABLE_KEYS``; ``num-clients``
    only where devices bring their own data: otherwise it decides how the data is split."""
    new = cfg.to_flat()
    mutable = MUTABLE_KEYS if cfg.node_data else MUTABLE_KEYS - {"num-clients"}
    changed = sorted(k for k, v in new.items() if k not in mutable and k in saved and saved[k] != v)
    if changed:
        diffs = ", ".join(f"{k}: {saved[k]!r} -> {new[k]!r}" for k in changed)
        raise ConfigError(f"resume: the config differs from the saved run's ({diffs})")


def find_resume_point(out: RunOutputs) -> ResumePoint:
    """Where to go on: after the last recorded round, from the newest good checkpoint."""
    completed = sorted(r["round"] for r in out.rows if r["completed"])
    candidates = sorted({0, *completed}, reverse=True)
    for ckpt_round in candidates:
        path = out.checkpoint_path(ckpt_round)
        try:
            arrays = checkpoint_shared_arrays(path)
        except CheckpointError as exc:
            log.warning("resume: skipping checkpoint of round %d: %s", ckpt_round, exc)
            continue
        if ckpt_round == (completed[-1] if completed else 0):
            last = max((r["round"] for r in out.rows), default=0)
        else:  # a newer checkpoint was bad: redo every round after this one
            out.truncate(ckpt_round)
            last = ckpt_round
        return ResumePoint(next_round=last + 1, arrays=arrays, checkpoint_round=ckpt_round)
    raise ConfigError(f"resume: no readable checkpoint in {out.dir / 'checkpoints'}")
