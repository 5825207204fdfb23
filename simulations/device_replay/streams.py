"""The streams ``fedssl device`` replays: one device's labeled windows in time order.

- HAPT: one user's windows of the 6 basic activities (labels 0-5 here, HAPT's 1-6),
  in recording order then time order, as ``common.data.hapt`` stores them. Users
  22-30 are the held-out users of the evaluation protocol (``common.eval.protocol``):
  neither pretraining nor any probe saw them.
- ``npz:PATH``: the file's labeled rows (y >= 0) in file order; ``--user`` picks one
  client id when the file has them.
- Other data sets: a client's labeled samples if the data has client ids, else the
  evaluation protocol's probe-test samples in index order.

``calibration_split`` takes the first few labeled windows of each class (what a user
would label on day one); the rest is replayed. ``rotate_sensor`` is the drift drill:
every xyz channel triplet (HAPT: accelerometer, gyroscope) rotated by one fixed
rotation, as if the phone were mounted turned by that angle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from common.data.dataset import Dataset
from common.errors import BadInputError

log = logging.getLogger("fedssl.device")

HAPT_TEST_USERS = tuple(range(22, 31))
HAPT_ACTIONS = 6  # the basic activities; the transitions (HAPT labels 7-12) are left out
ROTATION_AXES = ("x", "y", "z")


class StreamError(BadInputError):
    """A user, stream spec, calibration or rotation request that cannot be served."""


@dataclass
class DeviceStream:
    """One device's labeled windows in time order."""

    name: str
    x: np.ndarray
    y: np.ndarray
    n_actions: int
    description: str


def parse_users(spec: str) -> list[int] | None:
    """``all`` (HAPT's test users 22-30), ``N`` or ``N,M,...``; empty -> None."""
    text = spec.strip().lower()
    if not text:
        return None
    if text == "all":
        return list(HAPT_TEST_USERS)
    try:
        users = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise StreamError(f"--user {spec!r}: expected all, N or N,M,...") from None
    if not users:
        raise StreamError(f"--user {spec!r}: no user given")
    return users


def _labeled(ds: Dataset, mask: np.ndarray, n_actions: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(mask & (ds.y >= 0) & (ds.y < n_actions))
    return np.ascontiguousarray(ds.x[idx]), ds.y[idx].astype(np.int64)


def load_streams(dataset: str, users: list[int] | None) -> list[DeviceStream]:
    """The streams of ``dataset`` (a name or ``npz:PATH``) for ``users`` (see the module doc)."""
    from common.data.registry import load_dataset
    from common.eval.protocol import evaluation_split

    ds = load_dataset(dataset)
    is_hapt = ds.name == "hapt"
    n_actions = HAPT_ACTIONS if is_hapt else int(ds.num_classes)
    if users is None and is_hapt:
        users = [HAPT_TEST_USERS[0]]
    streams: list[DeviceStream] = []
    if users is not None:
        if ds.client is None:
            raise StreamError(f"{dataset} has no client ids: --user cannot pick a device")
        for user in users:
            x, y = _labeled(ds, ds.client == user, n_actions)
            if len(y) == 0:
                known = np.unique(ds.client).tolist()
                raise StreamError(
                    f"{dataset}: user {user} has no labeled windows (users: {known[0]}-{known[-1]})"
                )
            unseen = " (an unseen test user)" if is_hapt and user in HAPT_TEST_USERS else ""
            if is_hapt and user not in HAPT_TEST_USERS:
                log.warning(
                    "user %d is one of HAPT's pretraining users (1-21): the encoder has seen "
                    "its windows, so these figures are not on unseen data (test users: 22-30)",
                    user,
                )
            streams.append(
                DeviceStream(f"user-{user}", x, y, n_actions, f"{dataset} user {user}{unseen}")
            )
        return streams
    if dataset.startswith("npz:"):
        x, y = _labeled(ds, np.ones(len(ds), bool), n_actions)
        where = "labeled rows in file order"
    else:
        split = evaluation_split(ds)
        idx = np.sort(split.probe_test)
        x, y = np.ascontiguousarray(ds.x[idx]), ds.y[idx].astype(np.int64)
        where = "probe-test samples in index order"
    if len(y) == 0:
        raise StreamError(f"{dataset}: no labeled samples to replay (y >= 0 needed for rewards)")
    return [DeviceStream("stream", x, y, n_actions, f"{dataset}: {where}")]


def calibration_split(y: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first ``per_class`` windows of each class, and of the rest (in order)."""
    if per_class < 1:
        raise StreamError(f"--labels-per-class must be >= 1, got {per_class}")
    labels = np.asarray(y)
    first = [np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]
    calib = np.sort(np.concatenate(first)) if first else np.zeros(0, np.int64)
    if len(np.unique(labels[calib])) < 2:
        raise StreamError("the stream has labels of fewer than two classes: nothing to decide")
    rest = np.setdiff1d(np.arange(len(labels)), calib)
    if len(rest) == 0:
        raise StreamError(
            f"all {len(labels)} windows went to the {per_class} labels per class: nothing left "
            "to replay; lower --labels-per-class"
        )
    return calib, rest


def rotation_matrix(degrees: float, axis: str) -> np.ndarray:
    """The 3 x 3 rotation by ``degrees`` about ``axis`` (x, y or z), float32."""
    if axis not in ROTATION_AXES:
        raise StreamError(f"rotation axis must be one of {ROTATION_AXES}, got {axis!r}")
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    i, j = [(1, 2), (2, 0), (0, 1)][ROTATION_AXES.index(axis)]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r.astype(np.float32)


def rotate_sensor(x: np.ndarray, degrees: float, axis: str = "z") -> np.ndarray:
    """A copy of windows (N, C, L) with every xyz channel triplet rotated."""
    if x.ndim != 3 or x.shape[1] % 3:
        raise StreamError(
            f"rotation needs sensor windows (N, C, L) with C a multiple of 3, got {x.shape}"
        )
    r = rotation_matrix(degrees, axis)
    n, c, length = x.shape
    triplets = x.reshape(n, c // 3, 3, length)
    return np.einsum("ij,ntjl->ntil", r, triplets).reshape(n, c, length).astype(np.float32)


def check_fraction(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise StreamError(f"--rotate-at must be a fraction in [0, 1), got {value}")
    return float(value)
