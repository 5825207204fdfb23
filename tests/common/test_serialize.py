"""Encoder files rebuild the same function; damaged files are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.models.registry import build_encoder
from common.serialize import (
    CheckpointError,
    arrays_to_state,
    load_encoder,
    save_encoder,
    state_to_arrays,
)


def test_save_load_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    enc = build_encoder("cnn1d", in_channels=6).eval()
    path = tmp_path / "enc.pt"
    save_encoder(path, enc, "cnn1d", {"in_channels": 6}, {"round": 3})
    loaded = load_encoder(path)
    x = torch.randn(4, 6, 128)
    with torch.no_grad():
        assert torch.equal(enc(x), loaded(x))


def test_truncated_file_is_detected(tmp_path: Path) -> None:
    enc = build_encoder("cnn1d", in_channels=6)
    path = tmp_path / "enc.pt"
    save_encoder(path, enc, "cnn1d", {"in_channels": 6})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(path)):
        load_encoder(path)


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such"):
        load_encoder(tmp_path / "absent.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a fedssl-encoder"):
        load_encoder(other)


def test_flipped_weight_fails_checksum(tmp_path: Path) -> None:
    enc = build_encoder("cnn1d", in_channels=6)
    path = tmp_path / "enc.pt"
    save_encoder(path, enc, "cnn1d", {"in_channels": 6})
    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = payload["state_dict"][key] + 1.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="checksum"):
        load_encoder(path)


def test_flat_float64_arrays_map_back_by_order() -> None:
    enc = build_encoder("cnn1d", in_channels=6)
    state = enc.state_dict()
    keys = list(state)
    arrays = [a.astype(np.float64).ravel() for a in state_to_arrays(state, keys)]
    back = arrays_to_state(arrays, keys, state)
    for k in keys:
        assert back[k].dtype == torch.float32 and back[k].shape == state[k].shape
        assert torch.equal(back[k], state[k])
    with pytest.raises(ValueError, match="expected"):
        arrays_to_state(arrays[:-1], keys, state)
