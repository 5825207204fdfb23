"""The fedssl ClientApp: a thin Flower adapter over ``common.local_round``.

It reads the legacy ``fitins`` layout (what SecAgg+'s mod expects), trains the
node's partition, keeps per-client state (optimizer, BYOL target and predictor) in
``context.state`` and returns only the float32 delta of the shared parameters.
Cross-cutting concerns are mods: SecAgg+ and timing always; the audit recorders and
the fault drills only when their environment variable is set (``train_mods``).
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
from flwr.clientapp.typing import Mod
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from client.mods import faults, recorder
from client.mods.secagg import optional_secaggplus_mod
from client.mods.timing import note, timing_mod
from client.node_config import device_data, is_simulated, partition_id_of, role_of
from client.state_store import load_state, save_state, state_file
from common.atomic import atomic_write_bytes
from common.errors import FedsslError
from common.messages import (
    EVALUATE,
    ROLE_RECORD,
    RUN_END_FILE,
    RUN_END_RECORD,
    read_training_config,
)
from common.threads import set_torch_threads, threads_from_env

STATE_RECORD = "fedssl-client-state"


class EvaluationOnly(FedsslError):
    """A training instruction reached a node that only evaluates."""


log = logging.getLogger("fedssl.client")


def app_mods() -> list[Mod]:
    """Around every handler: timing (the device's own log of each message), and with
    ``FEDSSL_RECORD_DIR`` set, the audit recorder of what leaves the device (training,
    evaluation and role replies alike)."""
    mods: list[Mod] = [timing_mod]
    return mods + ([recorder.sent_record_mod] if os.environ.get(recorder.ENV) else [])


app = ClientApp(mods=app_mods())


def train_mods() -> list[Mod]:
    """Outermost first (inside ``app_mods``). The drills (``FEDSSL_FAULTS``) fail chosen
    clients at chosen stages; the recorder (``FEDSSL_RECORD_DIR``) keeps, inside SecAgg+,
    the unmasked update for audits. Without their variables their code is not in the
    chain."""
    recording = bool(os.environ.get(recorder.ENV))
    mods: list[Mod] = []
    if os.environ.get(faults.ENV):
        mods.append(faults.fault_injection_mod)
    mods.append(optional_secaggplus_mod)
    if recording:
        mods.append(recorder.plain_update_record_mod)
    return mods


def _local_inputs(cfg: Any, context: Context) -> np.ndarray:
    """This node's unlabeled data: its own file in deployment, its partition in simulation."""
    if not is_simulated(context):
        return device_data(context)[0]
    from common.client_data import client_inputs

    return client_inputs(cfg, partition_id_of(context))


def _state_path(context: Context, run_key: str) -> Path | None:
    """The node-local state file of this run, when the node has a ``state-dir``."""
    state_dir = context.node_config.get("state-dir")
    if not state_dir:
        return None
    device = str(context.node_config.get("device-id", ""))
    return state_file(str(state_dir), run_key or "default", device)


def _kept_state(context: Context, disk: Path | None, server_round: int) -> bytes | None:
    """What this client kept from its last round: in memory, else on the device's disk."""
    record = context.state.config_records.get(STATE_RECORD)
    state = bytes(record["blob"]) if record is not None else None  # type: ignore[arg-type]
    if state is None and disk is not None:
        state = load_state(disk)
        if state is not None:
            log.info("round %d: restored local state from %s", server_round, disk)
    return state


@app.train(mods=train_mods())
def train(msg: Message, context: Context) -> Message:
    """Local self-supervised training for one round."""
    # Imported here: three of SecAgg+'s four messages per round never train.
    from common.client_data import client_indices
    from common.local_round import global_from_wire, run_local_round
    from common.logs import setup_logging
    from common.wire_vector import flatten, single_vector

    if context.node_config.get("state-dir"):
        setup_logging()  # a real device (fedssl client): its log shows what each round did
    set_torch_threads(threads_from_env())
    fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
    cfg, server_round, run_key = read_training_config(dict(fitins.config))
    if role_of(context, lambda: len(client_indices(cfg))) == EVALUATE:
        raise EvaluationOnly("this node only evaluates; it does not train")
    disk = _state_path(context, run_key)
    x = _local_inputs(cfg, context)
    vector = single_vector(parameters_to_ndarrays(fitins.parameters))
    result = run_local_round(
        cfg,
        x,
        global_from_wire(cfg, tuple(x.shape[1:]), vector, partition_id_of(context)),
        _kept_state(context, disk, server_round),
        server_round=server_round,
        partition_id=partition_id_of(context),
    )
    context.state.config_records[STATE_RECORD] = ConfigRecord({"blob": result.state})
    if disk is not None:
        save_state(disk, result.state)
    # The device's console shows it with the round's stage times (client.console).
    note(**result.metrics, **result.local_metrics)
    fitres = FitRes(
        status=Status(code=Code.OK, message="OK"),
        parameters=ndarrays_to_parameters([flatten(result.delta)]),
        num_examples=_secagg_weight(cfg, result.num_examples, server_round),
        metrics=dict(result.metrics),
    )
    return Message(compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)


def _secagg_weight(cfg: Any, num_examples: int, server_round: int) -> int:
    """The sample count the update is weighted with in the secure sum."""
    if cfg.dp_clipping:
        # DP-FedAvg's sensitivity bound needs every clipped update to count equally:
        # all clients claim max-weight, so SecAgg+'s weight ratio is 1 for everyone.
        return max(1, int(cfg.max_weight))
    if cfg.max_weight and num_examples > cfg.max_weight:
        # SecAgg+ scales each update by num_examples / max-weight; above 1 the scaled
        # values can overflow the clipping range, so this device counts as max-weight.
        log.warning(
            "round %d: %d local samples exceed max-weight %g; weighted as %g",
            server_round,
            num_examples,
            cfg.max_weight,
            cfg.max_weight,
        )
        return int(cfg.max_weight)
    return num_examples


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Federated evaluation: store the delivered global encoder, evaluate it locally."""
    from client.evaluation_handler import evaluate_message
    from common.logs import setup_logging

    if context.node_config.get("state-dir"):
        setup_logging()
    set_torch_threads(threads_from_env())
    return evaluate_message(msg, context)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """The server asks this node's role, or says that the run has ended (left in the
    state dir, where ``fedssl client`` looks for it; simulated clients have none)."""
    role = msg.content.config_records.get(ROLE_RECORD)
    if role is not None:
        from client.evaluation_handler import role_reply

        return role_reply(msg, context, dict(role))
    record = msg.content.config_records.get(RUN_END_RECORD)
    state_dir = context.node_config.get("state-dir")
    if record is not None and state_dir:
        note = {"run-id": msg.metadata.run_id, **dict(record)}
        atomic_write_bytes(Path(str(state_dir)) / RUN_END_FILE, json.dumps(note).encode())
    return Message(RecordDict(), reply_to=msg)
