"""The fedssl ClientApp: a thin Flower adapter over ``common.local_round``.

It reads the legacy ``fitins`` layout (what SecAgg+'s mod expects), trains the
node's partition, keeps per-client state (optimizer, BYOL target and predictor) in
``context.state`` and returns only the float32 delta of the shared parameters.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from client.faults import InjectedFault, fault_injection_mod, partition_id_of, should_fail
from client.recorder import plain_update_record_mod, sent_record_mod
from client.secagg import optional_secaggplus_mod
from client.state_store import load_state, save_state, state_file
from client.timing import timing_mod
from common.atomic import atomic_write_bytes
from common.messages import ROUND_KEY, RUN_END_FILE, RUN_END_RECORD

STATE_RECORD = "fedssl-client-state"

log = logging.getLogger("fedssl.client")

app = ClientApp()


def _set_threads() -> None:
    import torch

    threads = int(os.environ.get("FEDSSL_TORCH_THREADS", "0"))
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _local_inputs(cfg_flat: dict[str, Any], context: Context) -> np.ndarray:
    """This node's unlabeled data: its own file in deployment, its partition in simulation."""
    from common.config import RunConfig

    cfg = RunConfig.from_flat(cfg_flat)
    data_path = context.node_config.get("data-path")
    if data_path:
        from common.data.registry import load_dataset

        return load_dataset(f"npz:{data_path}").x
    from common.client_data import client_inputs

    return client_inputs(cfg, partition_id_of(context))


def _state_path(context: Context, cfg: Any) -> Path | None:
    """The node-local state file of this run, when the node has a ``state-dir``."""
    state_dir = context.node_config.get("state-dir")
    if not state_dir:
        return None
    return state_file(str(state_dir), cfg.out_dir or "default")


@app.train(
    mods=[
        sent_record_mod,  # outermost: what leaves the device (only with FEDSSL_RECORD_DIR)
        timing_mod,
        fault_injection_mod,
        optional_secaggplus_mod,
        plain_update_record_mod,  # inside SecAgg+: the unmasked update, for audits only
    ]
)
def train(msg: Message, context: Context) -> Message:
    """Local self-supervised training for one round."""
    # Imported here: three of SecAgg+'s four messages per round never train.
    from common.config import RunConfig
    from common.local_round import run_local_round
    from common.logs import setup_logging

    if context.node_config.get("state-dir"):
        setup_logging()  # a real device (fedssl client): its log shows what each round did
    _set_threads()
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    flat = dict(fitins.config)
    server_round = int(flat.pop(ROUND_KEY))
    cfg = RunConfig.from_flat(flat)
    pid = partition_id_of(context)
    if should_fail("train", pid, server_round):
        raise InjectedFault(f"injected fault while training, round {server_round}")
    x = _local_inputs(flat, context)
    if should_fail("nan", pid, server_round):  # drill: one corrupt value in the local data
        x = x.copy()
        x.flat[0] = np.nan
    record = context.state.config_records.get(STATE_RECORD)
    state = bytes(record["blob"]) if record is not None else None  # type: ignore[arg-type]
    disk = _state_path(context, cfg)
    if state is None and disk is not None:
        state = load_state(disk)
        if state is not None:
            log.info("round %d: restored local state from %s", server_round, disk)
    result = run_local_round(
        cfg,
        x,
        parameters_to_ndarrays(fitins.parameters),
        state,
        server_round=server_round,
        partition_id=pid,
    )
    context.state.config_records[STATE_RECORD] = ConfigRecord({"blob": result.state})
    if disk is not None:
        save_state(disk, result.state)
    num_examples = result.num_examples
    if cfg.dp_clipping:
        # DP-FedAvg's sensitivity bound needs every clipped update to count equally:
        # all clients claim max-weight, so SecAgg+'s weight ratio is 1 for everyone.
        num_examples = max(1, int(cfg.max_weight))
    elif cfg.max_weight and num_examples > cfg.max_weight:
        # SecAgg+ scales each update by num_examples / max-weight; above 1 the scaled
        # values can overflow the clipping range, so this device counts as max-weight.
        log.warning(
            "round %d: %d local samples exceed max-weight %g; weighted as %g",
            server_round,
            num_examples,
            cfg.max_weight,
            cfg.max_weight,
        )
        num_examples = int(cfg.max_weight)
    log.info("round %d: %s", server_round, {**result.metrics, **result.local_metrics})
    fitres = FitRes(
        status=Status(code=Code.OK, message="OK"),
        parameters=ndarrays_to_parameters(result.delta),
        num_examples=num_examples,
        metrics=dict(result.metrics),
    )
    return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """The server's word that the run has ended: left in the state dir, where
    ``fedssl client`` looks for it (simulated clients have no state dir)."""
    record = msg.content.config_records.get(RUN_END_RECORD)
    state_dir = context.node_config.get("state-dir")
    if record is not None and state_dir:
        note = {"run-id": msg.metadata.run_id, **dict(record)}
        atomic_write_bytes(Path(str(state_dir)) / RUN_END_FILE, json.dumps(note).encode())
    return Message(RecordDict(), reply_to=msg)
