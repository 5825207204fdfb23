"""Device streams: users, calibration labels, and the rotated-sensor drill."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.device_replay.streams import (
    HAPT_TEST_USERS,
    StreamError,
    calibration_split,
    check_fraction,
    load_streams,
    parse_users,
    rotate_sensor,
    rotation_matrix,
)


def test_rotation_about_z_turns_x_into_y_on_every_triplet() -> None:
    x = np.zeros((1, 6, 4), np.float32)
    x[0, 0] = 1.0  # accelerometer along x (gravity)
    x[0, 5] = 2.0  # gyroscope about z
    out = rotate_sensor(x, 90, "z")
    np.testing.assert_allclose(out[0, :3, 0], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(out[0, 3:, 0], [0, 0, 2], atol=1e-6)  # z is the axis: unmoved
    np.testing.assert_allclose(rotate_sensor(x, 90, "x")[0, :3, 0], [1, 0, 0], atol=1e-6)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 6, 8)).astype(np.float32)
    r = rotate_sensor(w, 37, "y")
    for t in (slice(0, 3), slice(3, 6)):  # lengths kept per triplet and time step
        np.testing.assert_allclose(
            np.linalg.norm(r[:, t], axis=1), np.linalg.norm(w[:, t], axis=1), rtol=1e-5
        )
    m = rotation_matrix(30, "y")
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-6)


def test_rotation_refuses_non_triplets_and_unknown_axes() -> None:
    with pytest.raises(StreamError, match="multiple of 3"):
        rotate_sensor(np.zeros((2, 4, 8), np.float32), 90)
    with pytest.raises(StreamError, match="axis"):
        rotation_matrix(90, "w")


def test_calibration_takes_the_first_labels_of_each_class() -> None:
    y = np.array([0, 0, 1, 0, 2, 1, 1, 2, 0])
    calib, rest = calibration_split(y, 2)
    assert calib.tolist() == [0, 1, 2, 4, 5, 7]
    assert rest.tolist() == [3, 6, 8]
    with pytest.raises(StreamError, match=">= 1"):
        calibration_split(y, 0)
    with pytest.raises(StreamError, match="nothing left"):
        calibration_split(y, 5)
    with pytest.raises(StreamError, match="two classes"):
        calibration_split(np.zeros(10, int), 2)


def test_user_specs() -> None:
    assert parse_users("all") == list(HAPT_TEST_USERS) == list(range(22, 31))
    assert parse_users("23") == [23] and parse_users("22, 25") == [22, 25]
    assert parse_users("") is None
    with pytest.raises(StreamError, match="expected all"):
        parse_users("twenty")
    with pytest.raises(StreamError, match="fraction"):
        check_fraction(1.0)


def test_npz_streams_by_client_and_in_file_order(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "dev.npz"
    rng = np.random.default_rng(0)
    x = rng.standard_normal((30, 3, 8)).astype(np.float32)
    y = np.tile([0, 1, 2, -1, 1], 6)
    client = np.repeat([5, 6], 15)
    np.savez(path, x=x, y=y, client=client)
    (one,) = load_streams(f"npz:{path}", None)
    assert len(one.y) == 24 and one.n_actions == 3  # unlabeled rows dropped, order kept
    np.testing.assert_array_equal(one.x, x[y >= 0])
    streams = load_streams(f"npz:{path}", [6, 5])
    assert [s.name for s in streams] == ["user-6", "user-5"]
    np.testing.assert_array_equal(streams[0].x, x[(client == 6) & (y >= 0)])
    with pytest.raises(StreamError, match="user 7 has no labeled windows"):
        load_streams(f"npz:{path}", [7])
