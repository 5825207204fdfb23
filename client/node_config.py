"""Per-device facts a SuperNode is started with (``--node-config``): its partition in a
simulation, its data file and state folder on a real device."""

from __future__ import annotations

from collections.abc import Callable

from flwr.app import Context


def partition_id_of(context: Context) -> int:
    """The simulated client's partition (-1 on a real device, which has its own data)."""
    return int(context.node_config.get("partition-id", -1))


def is_simulated(context: Context) -> bool:
    """A simulated client has a partition; a real device brings its own data file."""
    return not context.node_config.get("data-path")


def role_of(context: Context, training_clients: Callable[[], int]) -> str:
    """``train`` or ``evaluate``: a device's node config says (``fedssl client
    --evaluate-only``); a simulated client past the training partitions only evaluates.
    ``training_clients`` counts the run's training partitions (only asked in simulation)."""
    from common.messages import EVALUATE, TRAIN

    if not is_simulated(context):
        return EVALUATE if str(context.node_config.get("role", TRAIN)) == EVALUATE else TRAIN
    return EVALUATE if partition_id_of(context) >= training_clients() else TRAIN
