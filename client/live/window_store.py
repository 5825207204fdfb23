"""The device's private window store: what it has seen lately, on its own disk.

A live device keeps every window it sees (and its label, when the stream gives one) as
its unlabeled training data: each federated round then trains on what the device has
seen lately, not on a fixed file. The store is bounded: it keeps the newest
``max_windows`` (the oldest are dropped first, a segment file at a time, so the disk
holds at most one segment more). It is crash-safe: windows are appended to segment
files as checksummed records, and a record cut short by a crash, or one whose checksum
does not match, ends its segment on reading (at most the window being written is
lost). Windows of the wrong shape or with non-finite values never enter it.

Layout of ``DIR``: ``store.json`` (the window shape and segment size, written once) and
``seg-NNNNNNNN.bin`` files of records ``MAGIC | length u32 | crc32 u32 | label i32 |
float32 values``, little-endian.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common.atomic import atomic_write_bytes
from common.errors import BadInputError

MAGIC = b"FSW1"
HEADER = struct.Struct("<4sIIi")  # magic, payload length, crc32 of label+values, label
META_FILE = "store.json"
STORE_FOLDER = "store"  # in a live device's state folder
NO_LABEL = -1


class StoreError(BadInputError):
    """A window cannot enter the store, or the store belongs to another shape."""


class WindowStore:
    """Bounded, append-only, checksummed store of windows of one shape."""

    def __init__(
        self, folder: Path, shape: tuple[int, ...], max_windows: int, segment_windows: int = 0
    ) -> None:
        if max_windows < 1:
            raise StoreError(f"--store-max-windows must be at least 1, got {max_windows}")
        self.folder, self.shape, self.max_windows = folder, tuple(shape), max_windows
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The segment size is the store's own: it is kept across reopenings, which
        # ``seen`` relies on.
        wanted = segment_windows or max(1, min(1024, max_windows // 8))
        self.segment_windows = self._check_meta(wanted)
        self.segments = sorted(folder.glob("seg-*.bin"))
        self.counts = [sum(1 for _ in _records(s, self.shape)) for s in self.segments]
        # Windows ever taken, dropped ones included: every segment but the newest is full,
        # and segment numbers start at 1.
        first = int(self.segments[0].stem.split("-")[1]) if self.segments else 1
        self._seen = (first - 1) * self.segment_windows + sum(self.counts)
        self._open_tail()

    def _check_meta(self, segment_windows: int) -> int:
        """Check the stored shape (or write the metadata); return the segment size."""
        meta = self.folder / META_FILE
        if not meta.exists():
            body = {"shape": list(self.shape), "segment_windows": segment_windows}
            atomic_write_bytes(meta, json.dumps(body).encode())
            return segment_windows
        try:
            raw = json.loads(meta.read_text())
            stored = tuple(raw["shape"])
            segment_windows = int(raw.get("segment_windows", segment_windows))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{meta} is unreadable ({exc}); move the store away") from None
        if stored != self.shape:
            raise StoreError(
                f"the window store {self.folder} holds windows of shape {stored}, not "
                f"{self.shape}: give this stream its own store folder"
            )
        return segment_windows

    def _open_tail(self) -> None:
        """Append to the newest segment, cut back to its last whole, valid record."""
        if self.segments:
            tail = self.segments[-1]
            good = max((end for end, _, _ in _records(tail, self.shape)), default=0)
            if good != tail.stat().st_size:
                os.truncate(tail, good)  # a torn or corrupt last record
        self.fh = open(self._tail_path(), "ab")  # noqa: SIM115 (held while the store is open)

    def _tail_path(self) -> Path:
        if self.segments and self.counts[-1] < self.segment_windows:
            return self.segments[-1]
        index = int(self.segments[-1].stem.split("-")[1]) + 1 if self.segments else 1
        path = self.folder / f"seg-{index:08d}.bin"
        self.segments.append(path)
        self.counts.append(0)
        return path

    def append(self, window: np.ndarray, label: int | None = None) -> None:
        """Add one window (and its label); refuses a wrong shape or non-finite values."""
        x = np.asarray(window, dtype=np.float32)
        if x.shape != self.shape:
            raise StoreError(f"window of shape {x.shape}; this store holds {self.shape}")
        if not np.isfinite(x).all():
            raise StoreError(f"window with {int((~np.isfinite(x)).sum())} non-finite values")
        if self.counts[-1] >= self.segment_windows:
            self.fh.close()
            self.fh = open(self._tail_path(), "ab")  # noqa: SIM115
        lab = NO_LABEL if label is None else int(label)
        body = x.tobytes()
        crc = zlib.crc32(struct.pack("<i", lab) + body)
        self.fh.write(HEADER.pack(MAGIC, len(body), crc, lab) + body)
        self.fh.flush()
        self.counts[-1] += 1
        self._seen += 1
        self._drop_oldest()

    def _drop_oldest(self) -> None:
        """Delete whole old segments while the rest still holds ``max_windows``."""
        while len(self.segments) > 1 and sum(self.counts[1:]) >= self.max_windows:
            self.segments.pop(0).unlink(missing_ok=True)
            self.counts.pop(0)

    def sync(self) -> None:
        """Make what was appended durable (fsync): before a training round reads it."""
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """The newest ``max_windows`` windows, oldest first, and their labels (-1: none)."""
        xs: list[np.ndarray] = []
        ys: list[int] = []
        self.fh.flush()
        for segment in self.segments:
            for _, label, values in _records(segment, self.shape):
                xs.append(values)
                ys.append(label)
        keep = slice(max(0, len(xs) - self.max_windows), None)
        x = np.stack(xs[keep]) if xs else np.zeros((0, *self.shape), np.float32)
        return x.reshape((-1, *self.shape)), np.asarray(ys[keep], dtype=np.int64)

    def __len__(self) -> int:
        return min(sum(self.counts), self.max_windows)

    def seen(self) -> int:
        """How many windows ever entered the store, dropped ones included."""
        return self._seen

    def disk_bytes(self) -> int:
        return sum(s.stat().st_size for s in self.segments if s.exists())

    def close(self) -> None:
        self.fh.close()


def _records(segment: Path, shape: tuple[int, ...]) -> Iterator[tuple[int, int, np.ndarray]]:
    """(end offset, label, values) of each valid record, up to the first bad one."""
    try:
        data = segment.read_bytes()
    except FileNotFoundError:  # dropped by the writer meanwhile
        return
    pos, size = 0, int(np.prod(shape, dtype=np.int64)) * 4
    while pos + HEADER.size <= len(data):
        magic, length, crc, label = HEADER.unpack_from(data, pos)
        body = data[pos + HEADER.size : pos + HEADER.size + length]
        if magic != MAGIC or length != size or len(body) != length:
            return
        if zlib.crc32(struct.pack("<i", label) + body) != crc:
            return
        pos += HEADER.size + length
        yield pos, label, np.frombuffer(body, dtype=np.float32).reshape(shape)


def read_store(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The windows and labels in a store that another process may be writing (a training
    round reads while the agent appends): read only, a torn tail left to its writer,
    a segment deleted meanwhile skipped. Holds at most one segment beyond the bound."""
    try:
        shape = tuple(json.loads((folder / META_FILE).read_text())["shape"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{folder} is not a window store ({exc})") from None
    xs, ys = [], []
    for segment in sorted(folder.glob("seg-*.bin")):
        for _, label, values in _records(segment, shape):
            xs.append(values)
            ys.append(label)
    x = np.stack(xs) if xs else np.zeros((0, *shape), np.float32)
    return x, np.asarray(ys, dtype=np.int64)
