"""The delivered global encoder on a device: verified, stored atomically with its round,
refused (keeping the last good copy) when it fails its checksum."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from client.delivery import DeliveryError, check_delivery, store, stored
from common.config import RunConfig
from common.local_round import initial_global_arrays
from common.serialize import load_encoder
from server.round_report import save_global

CFG = RunConfig(dataset="digits")
SHAPE = (1, 8, 8)


def _checkpoint(tmp: Path, seed: int) -> bytes:
    path = tmp / f"round-{seed}.pt"
    save_global(
        CFG.replace(seed=seed),
        SHAPE,
        path,
        initial_global_arrays(CFG.replace(seed=seed), SHAPE),
        seed,
    )
    return path.read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_verified_delivery_is_stored_byte_for_byte(tmp_path: Path) -> None:
    payload = _checkpoint(tmp_path, 1)
    check_delivery(payload, _sha(payload), 1)
    path = store(tmp_path / "state", payload, 1, "run-key")
    assert path.read_bytes() == payload
    meta = stored(tmp_path / "state")
    assert meta is not None and meta["round"] == 1 and meta["sha256"] == _sha(payload)
    assert load_encoder(path) is not None  # ready for the runtime and for fedssl export


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_delivery_is_refused_and_the_last_good_copy_stays(
    tmp_path: Path, damage: str
) -> None:
    good = _checkpoint(tmp_path, 1)
    store(tmp_path / "state", good, 1, "k")
    newer = _checkpoint(tmp_path, 2)
    bad = (
        newer[:-100]
        if damage == "truncate"
        else newer[:500] + bytes([newer[500] ^ 1]) + newer[501:]
    )
    with pytest.raises(DeliveryError, match="failed its checksum; kept the previous one|checksum"):
        check_delivery(bad, _sha(newer), 2)
    assert (tmp_path / "state" / "global" / "encoder.pt").read_bytes() == good
    assert stored(tmp_path / "state")["round"] == 1  # type: ignore[index]


def test_bytes_that_match_their_checksum_but_are_no_encoder_are_refused(tmp_path: Path) -> None:
    junk = np.arange(1000, dtype=np.uint8).tobytes()
    with pytest.raises(DeliveryError, match="not a readable encoder file"):
        check_delivery(junk, _sha(junk), 3)


def test_an_interrupted_update_is_detected(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert stored(state) is None
    store(state, _checkpoint(tmp_path, 1), 1, "k")
    (state / "global" / "encoder.pt").write_bytes(_checkpoint(tmp_path, 2))  # meta not updated
    with pytest.raises(DeliveryError, match="does not match"):
        stored(state)
