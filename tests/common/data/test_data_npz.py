"""User .npz files: a good one round-trips; every bad one names the file and the problem."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from common.data import DataError, Dataset, load_dataset, load_npz, validate_dataset


def _save(tmp_path: Path, **arrays: np.ndarray) -> str:
    path = tmp_path / "dev.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy stubs reject a ** dict
    return str(path)


def _raises(path: str, problem: str, min_samples: int = 1) -> None:
    """Both loaders must raise DataError whose message names the file and matches `problem`."""
    with pytest.raises(DataError) as info:
        if min_samples > 1:
            load_dataset(f"npz:{path}", min_samples=min_samples)
        else:
            load_npz(path)
    msg = str(info.value)
    assert path in msg, msg
    assert re.search(problem, msg), msg


def test_good_file_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3, 16)).astype(np.float32)
    y = np.array([0, 1, 2, -1] * 5, dtype=np.int32)
    client = np.repeat(np.arange(4), 5)
    path = _save(tmp_path, x=x, y=y, client=client)
    ds = load_npz(path)
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.client is not None
    np.testing.assert_array_equal(ds.client, client)
    assert ds.y.dtype == np.int64 and ds.client.dtype == np.int64 and ds.x.dtype == np.float32
    assert ds.num_classes == 3 and ds.name == f"npz:{path}" and ds.kind == "sensor"
    assert load_dataset(f"npz:{path}").input_shape == (3, 16)


def test_images_without_labels_and_float64_cast(tmp_path: Path) -> None:
    path = _save(tmp_path, x=np.linspace(0, 1, 4 * 2 * 5 * 5).reshape(4, 2, 5, 5))
    ds = load_npz(path)
    assert ds.x.dtype == np.float32 and ds.kind == "image" and ds.input_shape == (2, 5, 5)
    assert ds.num_classes == 0 and (ds.y == -1).all() and ds.client is None


GOOD_X = np.zeros((6, 2, 8), dtype=np.float32)


def _with(idx: tuple[int, ...], value: float) -> np.ndarray:
    x = GOOD_X.copy()
    x[idx] = value
    return x


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"x": np.zeros((6, 8), np.float32)}, r"wrong rank 2"),
        ({"x": np.zeros((6, 1, 2, 3, 4), np.float32)}, r"wrong rank 5"),
        ({"x": np.zeros((6, 2, 8), np.uint8)}, r"dtype uint8, expected (a )?float"),
        ({"x": _with((3, 1, 2), np.nan)}, r"1 NaN and 0 Inf .*first at sample index 3"),
        ({"x": _with((4, 0, 0), np.inf)}, r"0 NaN and 1 Inf .*first at sample index 4"),
        ({"x": np.zeros((0, 2, 8), np.float32)}, r"empty"),
        ({"x": GOOD_X, "y": np.array([0, 1, 2, -3, 0, 1])}, r"out of range.*index 3.*value -3"),
        ({"x": GOOD_X, "y": np.array([0, 1, 2])}, r"y has length 3 but x has 6"),
        ({"x": GOOD_X, "y": np.linspace(0, 1, 6)}, r"y must be integer"),
        ({"x": GOOD_X, "client": np.arange(5)}, r"client has length 5 but x has 6"),
        ({"y": np.arange(6)}, r"missing key 'x'.*found keys \['y'\]"),
        ({"x": np.array([1, "a"], dtype=object)}, r"without pickle"),
    ],
)
def test_bad_arrays(tmp_path: Path, arrays: dict[str, np.ndarray], problem: str) -> None:
    _raises(_save(tmp_path, **arrays), problem)


def test_fewer_samples_than_min_samples(tmp_path: Path) -> None:
    path = _save(tmp_path, x=GOOD_X)
    _raises(path, r"only 6 samples, fewer than the 32 required", min_samples=32)
    assert len(load_dataset(f"npz:{path}", min_samples=6)) == 6


def test_corrupt_missing_and_wrong_format(tmp_path: Path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(os.urandom(512))
    _raises(str(junk), r"not an \.npz \(zip\) archive")
    good = Path(_save(tmp_path, x=GOOD_X))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:100])
    _raises(str(cut), r"corrupt, truncated")
    _raises(str(tmp_path / "missing.npz"), r"file not found")
    npy = tmp_path / "single.npy"
    np.save(npy, GOOD_X)
    _raises(str(npy), r"single \.npy array")


def test_validate_dataset_canonicalises_and_checks_class_range() -> None:
    ds = Dataset(
        x=np.zeros((4, 1, 3), np.float64),
        y=np.array([0, 1, 1, 0], np.int16),
        client=None,
        num_classes=2,
        name="t",
    )
    out = validate_dataset(ds, "src")
    assert out.x.dtype == np.float32 and out.y.dtype == np.int64
    bad = Dataset(x=ds.x, y=np.array([0, 1, 2, 0]), client=None, num_classes=2, name="t")
    with pytest.raises(DataError, match=r"^src: 1 labels out of range for 2 classes"):
        validate_dataset(bad, "src")
    overflow = Dataset(
        x=np.full((2, 1, 1, 1), 1e300),
        y=np.zeros(2, np.int64),
        client=None,
        num_classes=1,
        name="t",
    )
    with pytest.raises(DataError, match=r"2 Inf .*too large for float32"):
        validate_dataset(overflow, "src")
