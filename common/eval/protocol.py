"""Which samples pretrain the encoder and which evaluate it, per data set.

The federated encoder is judged on data that neither pretraining nor the probe's
training ever saw: for HAPT, the windows of unseen users (train users 1-21, test
users 22-30, the 6 basic activities, docs/architecture.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.data.dataset import Dataset
from common.data.hapt import HAPT_BASIC_CLASSES, hapt_probe_split

HAPT_TRAIN_USERS = range(1, 22)
HAPT_TEST_USERS = range(22, 31)
FMNIST_TRAIN_SIZE = 60_000  # load_fmnist("all") puts the official training split first
HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class EvalSplit:
    """Index arrays into one Dataset."""

    pretrain: np.ndarray  # what the clients hold for self-supervised training
    probe_train: np.ndarray  # labeled samples the probe is fitted on
    probe_test: np.ndarray  # labeled samples it is scored on (never pretrained on)
    description: str

    @property
    def can_probe(self) -> bool:
        return len(self.probe_train) > 0 and len(self.probe_test) > 0


def evaluation_split(ds: Dataset, seed: int = 0) -> EvalSplit:
    """The protocol for ``ds``: HAPT by users, Fashion-MNIST by its official split,
    anything with client ids by held-out clients, the rest by a seeded stratified holdout."""
    if ds.name == "hapt" and ds.client is not None:
        train_idx, test_idx = hapt_probe_split(
            ds, train_users=HAPT_TRAIN_USERS, test_users=HAPT_TEST_USERS, classes=HAPT_BASIC_CLASSES
        )
        pretrain = np.flatnonzero(np.isin(ds.client, list(HAPT_TRAIN_USERS)))
        return EvalSplit(
            pretrain,
            train_idx,
            test_idx,
            "HAPT: pretrain and probe on users 1-21, test on unseen users 22-30 (6 basic activities)",
        )
    labeled = np.flatnonzero(ds.y >= 0)
    if ds.name == "fmnist:all" and len(ds) == FMNIST_TRAIN_SIZE + 10_000:
        pretrain = np.arange(FMNIST_TRAIN_SIZE)
        return EvalSplit(
            pretrain,
            pretrain,
            np.arange(FMNIST_TRAIN_SIZE, len(ds)),
            "Fashion-MNIST: pretrain and probe on the 60k training images, test on the 10k test images",
        )
    rng = np.random.default_rng(seed)
    if ds.client is not None:
        ids = np.unique(ds.client)
        if len(ids) >= 4:
            n_test = max(1, int(round(HOLDOUT_FRACTION * len(ids))))
            test_ids = np.sort(rng.choice(ids, size=n_test, replace=False))
            test_mask = np.isin(ds.client, test_ids)
            pretrain = np.flatnonzero(~test_mask)
            return EvalSplit(
                pretrain,
                np.intersect1d(pretrain, labeled),
                np.intersect1d(np.flatnonzero(test_mask), labeled),
                f"held-out clients {test_ids.tolist()} for testing; the rest pretrain and probe",
            )
    test: list[np.ndarray] = []
    for cls in np.unique(ds.y[labeled]):
        members = labeled[ds.y[labeled] == cls]
        k = int(round(HOLDOUT_FRACTION * len(members)))
        if k:
            test.append(rng.choice(members, size=k, replace=False))
    probe_test = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    pretrain = np.setdiff1d(np.arange(len(ds)), probe_test)
    return EvalSplit(
        pretrain,
        np.intersect1d(pretrain, labeled),
        probe_test,
        f"seeded stratified {HOLDOUT_FRACTION:.0%} holdout of labeled samples for testing",
    )
