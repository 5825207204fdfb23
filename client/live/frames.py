"""Windows from a sensor process: the ``stdin`` stream format, and an ``npz`` replay.

A frame is one window, little-endian::

    magic  b"FSF1"                    4 bytes
    flags  u8   bit 0: a label follows, bit 1: a reward follows
    pad    3 bytes (zero)
    count  u32  number of float32 values (the window's shape is the run's)
    label  i32  (only with bit 0)
    reward f32  (only with bit 1)
    values count x f32, row-major

``FrameReader`` yields the good frames and counts the rest, each logged once per kind
and never raised: a frame with a bad header (the reader skips to the next magic), a
window whose value count does not fit the run's shape, a window with NaN or infinite
values. ``encode_frame`` writes a frame (for a sensor process written in Python, and
for tests); ``replay_npz`` paces an ``.npz`` file's windows as a stream (trials and
benchmarks).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAGIC = b"FSF1"
HEAD = struct.Struct("<4sB3xI")
HAS_LABEL, HAS_REWARD = 1, 2
MAX_VALUES = 1 << 22  # 16 MB of float32: anything larger is not a window
log = logging.getLogger("fedssl.client")


@dataclass(frozen=True)
class Frame:
    window: np.ndarray
    label: int | None = None
    reward: float | None = None


@dataclass
class FrameCounts:
    good: int = 0
    malformed: int = 0  # a header that is not a frame's: skipped to the next magic
    wrong_shape: int = 0
    non_finite: int = 0
    logged: set[str] = field(default_factory=set)

    @property
    def bad(self) -> int:
        return self.malformed + self.wrong_shape + self.non_finite


def encode_frame(
    window: np.ndarray, label: int | None = None, reward: float | None = None
) -> bytes:
    values = np.ascontiguousarray(window, dtype="<f4")
    flags = (HAS_LABEL if label is not None else 0) | (HAS_REWARD if reward is not None else 0)
    out = HEAD.pack(MAGIC, flags, values.size)
    out += struct.pack("<i", label) if label is not None else b""
    out += struct.pack("<f", reward) if reward is not None else b""
    return out + values.tobytes()


class FrameReader:
    """Good frames of ``shape`` from a binary stream, until it ends."""

    def __init__(self, stream: BinaryIO, shape: tuple[int, ...]) -> None:
        self.stream, self.shape = stream, tuple(shape)
        self.values = int(np.prod(self.shape, dtype=np.int64))
        self.counts = FrameCounts()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            head = self._read(HEAD.size)
            if len(head) < HEAD.size:
                return
            magic, flags, count = HEAD.unpack(head)
            if magic != MAGIC or flags > (HAS_LABEL | HAS_REWARD) or count > MAX_VALUES:
                self._bad("malformed", "a frame header that is not one; skipping to the next")
                if not self._resync(head):
                    return
                continue
            frame = self._body(flags, count)
            if frame is not None:
                yield frame

    def _body(self, flags: int, count: int) -> Frame | None:
        label = struct.unpack("<i", self._read(4))[0] if flags & HAS_LABEL else None
        reward = struct.unpack("<f", self._read(4))[0] if flags & HAS_REWARD else None
        raw = self._read(4 * count)
        if len(raw) < 4 * count:
            self._bad("malformed", "the stream ended inside a frame")
            return None
        if count != self.values:
            self._bad(
                "wrong_shape",
                f"a window of {count} values; the run's {self.shape} has {self.values}",
            )
            return None
        window = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(self.shape)
        if not np.isfinite(window).all():
            self._bad("non_finite", "a window with NaN or infinite values")
            return None
        self.counts.good += 1
        return Frame(window, label, reward)

    def _resync(self, head: bytes) -> bool:
        """Drop bytes up to the next magic (its start kept for the next header)."""
        buf, self._pushback = head[1:] + self._pushback, b""
        while True:
            at = buf.find(MAGIC)
            if at >= 0:
                self._pushback = buf[at:]
                return True
            more = self.stream.read(4096)
            if not more:
                return False
            buf = buf[-(len(MAGIC) - 1) :] + more

    _pushback = b""

    def _read(self, n: int) -> bytes:
        out, self._pushback = self._pushback[:n], self._pushback[n:]
        while len(out) < n:
            more = self.stream.read(n - len(out))
            if not more:
                break
            out += more
        return out

    def _bad(self, kind: str, why: str) -> None:
        setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        if kind not in self.counts.logged:
            self.counts.logged.add(kind)
            log.warning("stream: skipped %s (further ones are counted, not logged)", why)


def replay_npz(path: Path, pace: float, start_at: int = 0) -> Iterator[Frame]:
    """An ``.npz``'s windows (``x``, labels ``y`` when present) at ``pace`` per second,
    from window ``start_at`` on (a restarted device goes on where it stopped)."""
    from common.data.registry import load_dataset

    ds = load_dataset(f"npz:{path}")
    labels = ds.y if (ds.y >= 0).any() else None
    start = time.monotonic()
    for i in range(start_at, len(ds.x)):
        window = ds.x[i]
        if pace > 0:
            delay = start + (i - start_at) / pace - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield Frame(np.asarray(window, np.float32), None if labels is None else int(labels[i]))
