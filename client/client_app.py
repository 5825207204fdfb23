"""The fedssl ClientApp: a thin Flower adapter over ``common.local_round``.

It reads the legacy ``fitins`` layout (what SecAgg+'s mod expects), trains the
node's partition, keeps per-client state (optimizer, BYOL target and predictor) in
``context.state`` and returns only the float32 delta of the shared parameters.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Message
from flwr.clientapp import ClientApp
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from client.faults import InjectedFault, fault_injection_mod, partition_id_of, should_fail
from client.secagg import optional_secaggplus_mod

STATE_RECORD = "fedssl-client-state"
ROUND_KEY = "server-round"

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


@app.train(mods=[fault_injection_mod, optional_secaggplus_mod])
def train(msg: Message, context: Context) -> Message:
    """Local self-supervised training for one round."""
    # Imported here: three of SecAgg+'s four messages per round never train.
    from common.config import RunConfig
    from common.local_round import run_local_round

    _set_threads()
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    flat = dict(fitins.config)
    server_round = int(flat.pop(ROUND_KEY))
    cfg = RunConfig.from_flat(flat)
    pid = partition_id_of(context)
    if should_fail("train", pid, server_round):
        raise InjectedFault(f"injected fault while training, round {server_round}")
    x = _local_inputs(flat, context)
    record = context.state.config_records.get(STATE_RECORD)
    state = bytes(record["blob"]) if record is not None else None  # type: ignore[arg-type]
    result = run_local_round(
        cfg,
        x,
        parameters_to_ndarrays(fitins.parameters),
        state,
        server_round=server_round,
        partition_id=pid,
    )
    context.state.config_records[STATE_RECORD] = ConfigRecord({"blob": result.state})
    log.info("round %d: %s", server_round, {**result.metrics, **result.local_metrics})
    fitres = FitRes(
        status=Status(code=Code.OK, message="OK"),
        parameters=ndarrays_to_parameters(result.delta),
        num_examples=result.num_examples,
        metrics=dict(result.metrics),
    )
    return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)
