"""Registry names and the Dataset container itself."""

from __future__ import annotations

import numpy as np
import pytest

from common.data import DATASETS, DataError, Dataset, load_dataset


def test_registry_names_and_loading() -> None:
    assert set(DATASETS) == {"hapt", "digits", "fmnist"}
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.x.shape == (1797, 1, 8, 8)


def test_unknown_and_empty_specs() -> None:
    with pytest.raises(DataError, match=r"unknown data set 'mnist'; valid: hapt, digits, fmnist"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="needs a path"):
        load_dataset("npz:")


def test_min_samples_applies_to_named_sets() -> None:
    with pytest.raises(DataError, match=r"^digits: only 1797 samples, fewer than the 5000"):
        load_dataset("digits", min_samples=5000)


def test_subset_keeps_order_and_copies() -> None:
    ds = Dataset(
        x=np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3),
        y=np.array([0, 1, -1, 1, 0]),
        client=np.array([1, 1, 2, 2, 3]),
        num_classes=2,
        name="t",
        class_names=["a", "b"],
    )
    sub = ds.subset(np.array([4, 0, 2]))
    assert sub.y.tolist() == [0, 0, -1]
    assert sub.client is not None and sub.client.tolist() == [3, 1, 2]
    np.testing.assert_array_equal(sub.x, ds.x[[4, 0, 2]])
    assert sub.x.flags["C_CONTIGUOUS"] and len(sub) == 3
    sub.x[:] = -1
    assert ds.x.min() == 0  # the parent is untouched
    assert sub.class_names == ["a", "b"] and sub.num_classes == 2
    assert len(ds.subset(np.array([], dtype=np.int64))) == 0
    with pytest.raises(DataError, match="integer"):
        ds.subset(np.array([0.5]))
    with pytest.raises(DataError, match="out of range"):
        ds.subset(np.array([5]))
