"""What fedssl's ServerApp and ClientApp agree on inside Flower messages (defined once)."""

from __future__ import annotations

import hashlib
from dataclasses import fields
from typing import Any

from common.config import RunConfig, run_option
from common.config_values import Scalar, config_key

# The training instruction's config carries the round number under this key, and the
# run's key (which names the device's state file; not the server's paths) under RUN_KEY.
ROUND_KEY = "server-round"
RUN_KEY = "run-key"
# A query with this record asks a node its role: it trains, or only evaluates.
ROLE_RECORD = "fedssl-role"
PARTITION_KEY = "partition-id"  # in a role reply: the simulated client's partition (-1 on a device)
TRAIN, EVALUATE = "train", "evaluate"
# An evaluate message: the global encoder's file (ENCODER_RECORD, its bytes as uint8) and
# what to evaluate with (EVAL_RECORD); the reply's scalars are in EVAL_RESULT.
ENCODER_RECORD = "fedssl-encoder"
EVAL_RECORD = "fedssl-eval"
EVAL_RESULT = "fedssl-eval-result"
# A query message with this record tells a device that its run has ended.
RUN_END_RECORD = "fedssl-run-end"
# What a device's ClientApp writes into its state dir when told so; ``fedssl client``
# watches for it and exits.
RUN_END_FILE = "run-ended.json"

CLIENT_KEYS = tuple(config_key(f.name) for f in fields(RunConfig) if run_option(f).client)


def run_key(cfg: RunConfig) -> str:
    """A run's identity for its devices: a digest of its output folder, stable across a
    resume, revealing nothing of the server's file system."""
    return hashlib.sha256(cfg.out_dir.encode()).hexdigest()[:16]


def training_config(cfg: RunConfig) -> dict[str, Scalar]:
    """The keys a client trains with (declared ``client=True``) and the run's key."""
    flat = cfg.to_flat()
    return {**{k: flat[k] for k in CLIENT_KEYS}, RUN_KEY: run_key(cfg)}


def read_training_config(flat: dict[str, Any]) -> tuple[RunConfig, int, str]:
    """The client's side, parsed once: (config, round, run key)."""
    flat = dict(flat)
    server_round = int(flat.pop(ROUND_KEY))
    key = str(flat.pop(RUN_KEY, ""))
    return RunConfig.from_flat(flat), server_round, key
