"""Per-device facts a SuperNode is started with (``--node-config``): its partition in a
simulation, its data file and state folder on a real device."""

from __future__ import annotations

from flwr.app import Context


def partition_id_of(context: Context) -> int:
    """The simulated client's partition (-1 on a real device, which has its own data)."""
    return int(context.node_config.get("partition-id", -1))
