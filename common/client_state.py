"""What a client keeps between its rounds: one blob, in ``context.state`` and, on a real
device, in a checksummed file (``client.state_store``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch

from common.fedalgo.base import FedAlgorithm, Weights
from common.ssl.base import SSLMethod


@dataclass
class ClientState:
    """What a client keeps between its rounds (one blob in ``context.state`` / on disk)."""

    local: Weights  # the weights never sent: BYOL target and counters, local predictors
    optimizer: dict[str, Any]  # optimizer moments; empty when keep-optimizer-state is off
    shared: Weights | None  # its shared weights after training, when the algorithm needs them
    algorithm: dict[str, float]  # the algorithm's own scalars (FedEMA's scaler)


def pack_state(
    method: SSLMethod, optimizer: torch.optim.Optimizer | None, algo: FedAlgorithm
) -> bytes:
    full = method.state_dict()
    shared = algo.shared_keys(method)
    payload = {
        "local": {k: full[k].detach().cpu() for k in algo.local_keys(method)},
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "fed-algorithm": algo.name,
        "shared": (
            {k: full[k].detach().cpu().clone() for k in shared}
            if algo.keeps_local_weights
            else None
        ),
        "algorithm": algo.state_dict(),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def unpack_state(blob: bytes, algo: FedAlgorithm) -> ClientState | None:
    """The saved state, or None when it was written under another fed-algorithm: its
    shared/local split and its extra state mean something else, so the client starts
    afresh, as at its first participation."""
    payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if payload.get("fed-algorithm", "fedavg") != algo.name:
        return None
    return ClientState(
        local=payload["local"],
        optimizer=payload["optimizer"],
        shared=payload.get("shared"),
        algorithm=payload.get("algorithm") or {},
    )
