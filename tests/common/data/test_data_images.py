"""Image loaders: sklearn digits and Fashion-MNIST from the Debian IDX files."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.data import FMNIST_DIR, DataError, load_digits, load_fmnist

_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _need_fmnist() -> None:
    if not all(os.path.isfile(os.path.join(FMNIST_DIR, f)) for f in _TEST_FILES):
        pytest.skip("Debian package dataset-fashion-mnist is not installed")


def test_digits() -> None:
    ds = load_digits()
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert ds.y.dtype == np.int64 and sorted(set(ds.y.tolist())) == list(range(10))
    assert ds.num_classes == 10 and ds.client is None and ds.kind == "image"
    assert ds.input_shape == (1, 8, 8)


def test_fmnist_test_split() -> None:
    _need_fmnist()
    ds = load_fmnist("test")
    assert ds.x.shape == (10_000, 1, 28, 28) and ds.x.dtype == np.float32
    assert ds.x.min() == 0.0 and ds.x.max() == 1.0
    assert np.bincount(ds.y).tolist() == [1000] * 10  # official test split is balanced
    assert ds.num_classes == 10 and ds.class_names is not None and ds.class_names[9] == "Ankle boot"
    assert ds.client is None and ds.input_shape == (1, 28, 28)


def test_fmnist_train_and_all() -> None:
    _need_fmnist()
    train = load_fmnist()
    assert train.x.shape == (60_000, 1, 28, 28)
    assert np.bincount(train.y).tolist() == [6000] * 10
    everything = load_fmnist("all")
    assert len(everything) == 70_000
    np.testing.assert_array_equal(everything.y[:60_000], train.y)


def _copy_test_files(dst: Path) -> None:
    for f in _TEST_FILES:
        shutil.copy(os.path.join(FMNIST_DIR, f), dst / f)


def test_fmnist_truncated_gzip_names_file(tmp_path: Path) -> None:
    _need_fmnist()
    _copy_test_files(tmp_path)
    images = tmp_path / _TEST_FILES[0]
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: corrupt or truncated"):
        load_fmnist("test", root=str(tmp_path))


def test_fmnist_short_payload_and_bad_magic(tmp_path: Path) -> None:
    _need_fmnist()
    _copy_test_files(tmp_path)
    labels = tmp_path / _TEST_FILES[1]
    raw = gzip.decompress(labels.read_bytes())
    labels.write_bytes(gzip.compress(raw[:-10]))  # valid gzip, but fewer labels than declared
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: IDX header declares"):
        load_fmnist("test", root=str(tmp_path))
    labels.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + raw[4:]))  # images' magic number
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: bad IDX magic"):
        load_fmnist("test", root=str(tmp_path))


def test_fmnist_missing_files_say_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fmnist("test", root=str(tmp_path))
    with pytest.raises(DataError, match="FEDSSL_FMNIST_DIR"):
        load_fmnist("test", root=str(tmp_path / "absent"))
    with pytest.raises(DataError, match="unknown split"):
        load_fmnist("validation")


def test_fmnist_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need_fmnist()
    _copy_test_files(tmp_path)
    monkeypatch.setenv("FEDSSL_FMNIST_DIR", str(tmp_path))
    assert len(load_fmnist("test")) == 10_000
    monkeypatch.setenv("FEDSSL_FMNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(DataError, match="absent"):
        load_fmnist("test")
