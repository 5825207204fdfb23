"""Per-device facts a SuperNode is started with (``--node-config``): its partition in a
simulation; on a real device its data file (``data-path``) or its live window store
(``store-dir``), and its state folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from flwr.app import Context


def partition_id_of(context: Context) -> int:
    """The simulated client's partition (-1 on a real device, which has its own data)."""
    return int(context.node_config.get("partition-id", -1))


def is_simulated(context: Context) -> bool:
    """A simulated client has a partition; a real device brings its own data."""
    return not (context.node_config.get("data-path") or context.node_config.get("store-dir"))


def device_data(context: Context) -> tuple[np.ndarray, np.ndarray | None]:
    """A real device's windows and labels (None: no labels): what its live agent has
    stored lately (``fedssl client --stream``), else its ``--data`` file."""
    store = context.node_config.get("store-dir")
    if store:
        from client.live.window_store import read_store
        from common.data.errors import DataError

        x, y = read_store(Path(str(store)))
        if len(x) == 0:
            raise DataError(f"the window store {store} is empty: the stream has sent nothing yet")
        return x, (y if (y >= 0).any() else None)
    from common.data.registry import load_dataset

    ds = load_dataset(f"npz:{context.node_config['data-path']}")
    return ds.x, (ds.y if (ds.y >= 0).any() else None)


def role_of(context: Context, training_clients: Callable[[], int]) -> str:
    """``train`` or ``evaluate``: a device's node config says (``fedssl client
    --evaluate-only``); a simulated client past the training partitions only evaluates.
    ``training_clients`` counts the run's training partitions (only asked in simulation)."""
    from common.messages import EVALUATE, TRAIN

    if not is_simulated(context):
        return EVALUATE if str(context.node_config.get("role", TRAIN)) == EVALUATE else TRAIN
    return EVALUATE if partition_id_of(context) >= training_clients() else TRAIN
