"""The window store: bounded, oldest dropped first, crash-safe, checksummed, refuses bad windows."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from client.live.window_store import HEADER, StoreError, WindowStore

SHAPE = (2, 3)


def _window(i: int) -> np.ndarray:
    return np.full(SHAPE, float(i), dtype=np.float32) + np.arange(6, dtype=np.float32).reshape(
        SHAPE
    )


def test_windows_and_labels_come_back_in_order_after_reopening(tmp_path: Path) -> None:
    store = WindowStore(tmp_path, SHAPE, max_windows=100, segment_windows=4)
    for i in range(10):
        store.append(_window(i), label=i % 3 if i % 2 else None)
    store.close()
    x, y = WindowStore(tmp_path, SHAPE, max_windows=100, segment_windows=4).windows()
    np.testing.assert_array_equal(x, np.stack([_window(i) for i in range(10)]))
    assert y.tolist() == [-1 if i % 2 == 0 else i % 3 for i in range(10)]


def test_the_store_keeps_the_newest_windows_and_bounds_the_disk(tmp_path: Path) -> None:
    store = WindowStore(tmp_path, SHAPE, max_windows=10, segment_windows=3)
    for i in range(25):
        store.append(_window(i))
    x, _ = store.windows()
    assert len(store) == 10 and [int(w[0, 0]) for w in x] == list(range(15, 25))
    record = HEADER.size + 6 * 4
    assert store.disk_bytes() <= (10 + 3) * record  # at most one segment beyond the bound
    assert len(list(tmp_path.glob("seg-*.bin"))) <= 5


def test_the_store_counts_every_window_it_took_across_drops_and_reopenings(
    tmp_path: Path,
) -> None:
    store = WindowStore(tmp_path, SHAPE, max_windows=10, segment_windows=3)
    for i in range(25):
        store.append(_window(i))
    assert store.seen() == 25 and len(store) == 10
    store.close()
    # reopened with another bound: the segment size stays the store's own
    again = WindowStore(tmp_path, SHAPE, max_windows=1000)
    assert again.segment_windows == 3 and again.seen() == 25
    again.append(_window(25))
    assert again.seen() == 26 and int(again.windows()[0][-1][0, 0]) == 25


def test_a_torn_last_record_loses_only_that_window(tmp_path: Path) -> None:
    store = WindowStore(tmp_path, SHAPE, max_windows=100, segment_windows=50)
    for i in range(5):
        store.append(_window(i))
    store.close()
    tail = sorted(tmp_path.glob("seg-*.bin"))[-1]
    whole = tail.read_bytes()
    tail.write_bytes(whole + whole[: HEADER.size + 7])  # a sixth record cut short
    store = WindowStore(tmp_path, SHAPE, max_windows=100, segment_windows=50)
    assert len(store) == 5 and tail.stat().st_size == len(whole)  # cut back on opening
    store.append(_window(5))
    x, _ = store.windows()
    assert [int(w[0, 0]) for w in x] == [0, 1, 2, 3, 4, 5]


def test_a_corrupt_record_is_detected_by_its_checksum(tmp_path: Path) -> None:
    store = WindowStore(tmp_path, SHAPE, max_windows=100, segment_windows=3)
    for i in range(9):
        store.append(_window(i))
    store.close()
    middle = sorted(tmp_path.glob("seg-*.bin"))[1]  # windows 3, 4, 5
    data = bytearray(middle.read_bytes())
    record = HEADER.size + 6 * 4
    data[record + HEADER.size + 5] ^= 0xFF  # one flipped byte in window 4's values
    middle.write_bytes(bytes(data))
    x, _ = WindowStore(tmp_path, SHAPE, max_windows=100, segment_windows=3).windows()
    assert [int(w[0, 0]) for w in x] == [0, 1, 2, 3, 6, 7, 8]  # no silently wrong window


def test_bad_windows_never_enter_the_store(tmp_path: Path) -> None:
    store = WindowStore(tmp_path, SHAPE, max_windows=10)
    with pytest.raises(StoreError, match=r"shape \(3, 2\)"):
        store.append(np.zeros((3, 2), np.float32))
    bad = _window(0)
    bad[1, 1] = np.nan
    with pytest.raises(StoreError, match="1 non-finite"):
        store.append(bad)
    assert len(store) == 0 and store.windows()[0].shape == (0, *SHAPE)
    store.close()
    with pytest.raises(StoreError, match="holds windows of shape"):
        WindowStore(tmp_path, (6,), max_windows=10)


WRITER = """
import sys
import numpy as np
from pathlib import Path
from client.live.window_store import WindowStore
store = WindowStore(Path(sys.argv[1]), (64,), max_windows=10_000, segment_windows=100)
i = 0
while True:
    store.append(np.full(64, i, np.float32), label=i % 5)
    i += 1
    print(i, flush=True)
"""


def test_a_writer_killed_mid_stream_loses_at_most_one_window(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    reported = 0
    deadline = time.monotonic() + 60
    while reported < 2000 and time.monotonic() < deadline:
        reported = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    x, y = WindowStore(tmp_path, (64,), max_windows=10_000, segment_windows=100).windows()
    # every window the writer reported is there, in order and intact (it kept writing
    # while its lines waited in the pipe); a torn last one is cut away
    assert len(x) >= reported
    np.testing.assert_array_equal(x[:, 0], np.arange(len(x), dtype=np.float32))
    assert (x == x[:, :1]).all() and y.tolist() == [i % 5 for i in range(len(x))]


def test_a_reader_sees_what_the_writer_flushed_without_touching_it(tmp_path: Path) -> None:
    from client.live.window_store import read_store

    store = WindowStore(tmp_path, SHAPE, max_windows=100, segment_windows=4)
    for i in range(6):
        store.append(_window(i), label=i)
    tail = sorted(tmp_path.glob("seg-*.bin"))[-1]
    size = tail.stat().st_size
    with tail.open("ab") as fh:
        fh.write(b"FSW1\x18")  # the writer is in the middle of its next record
    x, y = read_store(tmp_path)
    assert y.tolist() == list(range(6)) and x.shape == (6, *SHAPE)
    assert tail.stat().st_size == size + 5  # the reader leaves the writer's file alone
    with pytest.raises(StoreError, match="not a window store"):
        read_store(tmp_path / "elsewhere")
