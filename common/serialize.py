"""Encoder files and flat weight vectors.

An encoder file carries its architecture and hyper-parameters next to the weights,
so ``load_encoder(path)`` rebuilds it with no other knowledge. Files are written
atomically (temp file + rename) and carry a SHA-256 of the weights, so a file cut
short by a crash is detected instead of half-loaded.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common.atomic import atomic_write_bytes
from common.errors import BadInputError
from common.models.registry import build_encoder

FORMAT = "fedssl-encoder/1"


class CheckpointError(BadInputError):
    """An encoder or checkpoint file is missing, truncated, corrupt or of another format."""


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def save_encoder(
    path: str | Path,
    encoder: nn.Module,
    arch: str,
    hparams: dict[str, Any],
    meta: dict[str, Any] | None = None,
    extra_state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Save weights + architecture (+ free-form ``meta`` such as round and method).

    ``extra_state`` holds more named tensors under the same checksum: checkpoints keep
    the whole shared state (projector included) there, so a run can resume from them.
    """
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    extra = {k: v.detach().cpu().clone() for k, v in (extra_state or {}).items()}
    payload = {
        "format": FORMAT,
        "arch": arch,
        "hparams": dict(hparams),
        "state_dict": state,
        "extra_state": extra,
        "sha256": _digest({**state, **{f"extra/{k}": v for k, v in extra.items()}}),
        "meta": dict(meta or {}),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_encoder_file(path: str | Path) -> dict[str, Any]:
    """Read and verify an encoder file; raise CheckpointError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such encoder file")
    return read_encoder_bytes(path.read_bytes(), str(path))


def read_encoder_bytes(data: bytes, name: str) -> dict[str, Any]:
    """Verify an encoder file's bytes (``name`` for messages): the format and the checksum
    of its weights."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, pickle errors
        raise CheckpointError(
            f"{name}: not a readable encoder file ({exc.__class__.__name__}: {exc})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not a {FORMAT} file")
    state = payload["state_dict"]
    extra = payload.get("extra_state", {})
    if _digest({**state, **{f"extra/{k}": v for k, v in extra.items()}}) != payload.get("sha256"):
        raise CheckpointError(f"{name}: checksum mismatch, the file is corrupt")
    return payload


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved encoder in eval mode: ``encoder = load_encoder("run/encoder.pt")``."""
    payload = read_encoder_file(path)
    encoder = build_encoder(payload["arch"], **payload["hparams"])
    encoder.load_state_dict(payload["state_dict"])
    return encoder.to(device).eval()


# ---- flat weight lists (what crosses the network) ----------------------------------


def state_to_arrays(state: dict[str, torch.Tensor], keys: list[str]) -> list[np.ndarray]:
    """float32 numpy copies of ``state[k]`` for ``k`` in ``keys``, in that order."""
    return [state[k].detach().cpu().to(torch.float32).numpy().copy() for k in keys]


def arrays_to_state(
    arrays: list[np.ndarray], keys: list[str], reference: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map an ordered, possibly float64 and flattened list back to named tensors.

    SecAgg+ returns the aggregate without names or shapes; order is the contract.
    """
    if len(arrays) != len(keys):
        raise ValueError(f"expected {len(keys)} arrays, got {len(arrays)}")
    out: dict[str, torch.Tensor] = {}
    for key, arr in zip(keys, arrays, strict=True):
        ref = reference[key]
        if arr.size != ref.numel():
            raise ValueError(f"{key}: expected {ref.numel()} values, got {arr.size}")
        out[key] = torch.from_numpy(np.asarray(arr, dtype=np.float32).reshape(tuple(ref.shape)))
    return out


def checkpoint_shared_arrays(path: str | Path) -> list[np.ndarray]:
    """The whole shared state (in wire order) stored in a round checkpoint."""
    return shared_arrays_of(read_encoder_file(path), str(path))


def shared_arrays_of(payload: dict[str, Any], name: str) -> list[np.ndarray]:
    """The shared state (wire order) of a verified checkpoint payload."""
    extra = payload.get("extra_state", {})
    if not extra:
        raise CheckpointError(f"{name}: holds no shared state (not a round checkpoint)")
    return [extra[k].numpy() for k in sorted(extra)]
