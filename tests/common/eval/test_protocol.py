"""The evaluation protocol never lets a test sample into pretraining or probe training."""

from __future__ import annotations

import numpy as np
import pytest

from common.data.dataset import Dataset
from common.data.registry import load_dataset
from common.eval.protocol import HAPT_TEST_USERS, evaluation_split


@pytest.fixture(scope="module")
def hapt() -> Dataset:
    return load_dataset("hapt")


def test_hapt_test_users_are_unseen(hapt: Dataset) -> None:
    split = evaluation_split(hapt)
    assert hapt.client is not None
    test_users = set(np.unique(hapt.client[split.probe_test]).tolist())
    assert test_users == set(HAPT_TEST_USERS)
    assert not test_users & set(np.unique(hapt.client[split.pretrain]).tolist())
    assert not test_users & set(np.unique(hapt.client[split.probe_train]).tolist())
    assert set(np.unique(hapt.y[split.probe_test]).tolist()) <= set(range(6))
    assert (hapt.y[split.pretrain] == -1).any(), "unlabeled windows are pretraining data too"
    assert len(split.probe_train) > 5000 and len(split.probe_test) > 3000


def test_stratified_holdout_without_client_ids() -> None:
    ds = load_dataset("digits")
    split = evaluation_split(ds, seed=1)
    assert not np.intersect1d(split.pretrain, split.probe_test).size
    assert not np.intersect1d(split.probe_train, split.probe_test).size
    counts = np.bincount(ds.y[split.probe_test], minlength=10)
    assert counts.min() > 0.15 * np.bincount(ds.y, minlength=10).min()
    again = evaluation_split(ds, seed=1)
    assert np.array_equal(split.probe_test, again.probe_test)


def test_held_out_clients_for_data_with_client_ids() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3, 16)).astype(np.float32)
    y = rng.integers(0, 3, size=100)
    client = np.repeat(np.arange(10), 10)
    ds = Dataset(x=x, y=y, client=client, num_classes=3, name="npz:x")
    split = evaluation_split(ds)
    test_ids = set(client[split.probe_test].tolist())
    assert test_ids and not test_ids & set(client[split.pretrain].tolist())


def test_unlabeled_data_cannot_be_probed() -> None:
    x = np.zeros((20, 1, 8, 8), dtype=np.float32)
    ds = Dataset(x=x, y=np.full(20, -1), client=None, num_classes=0, name="npz:u")
    split = evaluation_split(ds)
    assert not split.can_probe and len(split.pretrain) == 20


def test_no_client_ever_holds_a_test_user(hapt: Dataset) -> None:
    from common.client_data import client_indices
    from common.config import RunConfig

    assert hapt.client is not None
    for partition in ("natural", "iid", "dirichlet:0.5"):
        cfg = RunConfig(partition=partition, num_clients=0 if partition == "natural" else 7)
        held = np.concatenate(client_indices(cfg))
        assert not set(np.unique(hapt.client[held]).tolist()) & set(HAPT_TEST_USERS), partition
