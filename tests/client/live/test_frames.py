"""The stdin frame format: good frames through, bad ones counted and skipped, never raised."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest

from client.live.frames import FrameReader, encode_frame, replay_npz

SHAPE = (2, 4)


def _w(i: float) -> np.ndarray:
    return np.arange(8, dtype=np.float32).reshape(SHAPE) + i


def test_frames_round_trip_with_and_without_label_and_reward() -> None:
    data = encode_frame(_w(0)) + encode_frame(_w(1), label=3) + encode_frame(_w(2), 1, 0.5)
    frames = list(FrameReader(io.BytesIO(data), SHAPE))
    assert [(f.label, f.reward) for f in frames] == [(None, None), (3, None), (1, 0.5)]
    for i, f in enumerate(frames):
        np.testing.assert_array_equal(f.window, _w(i))


def test_the_documented_layout_by_hand() -> None:
    # magic, flags=1 (label), 3 pad bytes, count, label, values: built without encode_frame
    values = np.arange(8, dtype="<f4")
    data = b"FSF1" + bytes([1, 0, 0, 0]) + struct.pack("<I", 8) + struct.pack("<i", 7)
    (frame,) = FrameReader(io.BytesIO(data + values.tobytes()), SHAPE)
    assert frame.label == 7 and frame.window.tolist() == values.reshape(SHAPE).tolist()


def test_bad_frames_are_counted_skipped_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    nan = _w(9)
    nan[0, 1] = np.nan
    data = (
        encode_frame(_w(0))
        + b"garbage that is not a frame at all"
        + encode_frame(_w(1), label=2)
        + encode_frame(np.zeros(5, np.float32))  # wrong shape
        + encode_frame(nan)
        + encode_frame(nan)
        + b"FSF1\x09\x00\x00\x00"  # unknown flags
        + encode_frame(_w(2))
        + encode_frame(_w(3))[:-3]  # cut short by the end of the stream
    )
    reader = FrameReader(io.BytesIO(data), SHAPE)
    good = list(reader)
    assert [int(f.window[0, 0]) for f in good] == [0, 1, 2]
    c = reader.counts
    assert (c.good, c.malformed, c.wrong_shape, c.non_finite) == (3, 3, 1, 2)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3  # one per kind


def test_a_stream_in_small_pieces_reads_the_same() -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, n: int = -1) -> bytes:
            k = min(3, n if n >= 0 else 3)  # a pipe hands over a few bytes at a time
            out, self.data = self.data[:k], self.data[k:]
            return out

    data = b"xx" + encode_frame(_w(0)) + b"junk!" + encode_frame(_w(1), label=1)
    frames = list(FrameReader(Trickle(data), SHAPE))  # type: ignore[arg-type]
    assert [f.label for f in frames] == [None, 1]


def test_an_npz_replays_at_its_pace(tmp_path: Path) -> None:
    import time

    path = tmp_path / "s.npz"
    np.savez(path, x=np.stack([_w(i) for i in range(5)]), y=np.arange(5))
    t0 = time.monotonic()
    frames = list(replay_npz(path, pace=50.0))
    assert time.monotonic() - t0 >= 4 / 50.0
    assert [f.label for f in frames] == [0, 1, 2, 3, 4]
    # a restarted device goes on after the windows it has already seen
    assert [f.label for f in replay_npz(path, pace=0, start_at=3)] == [3, 4]
