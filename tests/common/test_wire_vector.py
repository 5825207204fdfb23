"""The shared weights as one flat vector: a lossless round trip, refusals by name."""

from __future__ import annotations

import numpy as np
import pytest

from common.wire_vector import WireShapeError, flatten, single_vector, unflatten


def test_round_trip_keeps_every_value_shape_and_order() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=s).astype(np.float32) for s in [(3, 2, 2), (5,), (), (1, 4)]]
    vector = flatten(arrays)
    assert vector.dtype == np.float32 and vector.shape == (12 + 5 + 1 + 4,)
    back = unflatten(vector, [a.shape for a in arrays])
    for a, b in zip(arrays, back, strict=True):
        assert b.shape == a.shape
        np.testing.assert_array_equal(a, b)
    # independent reference: numpy's own concatenation of the raveled arrays
    np.testing.assert_array_equal(vector, np.concatenate([a.reshape(-1) for a in arrays]))


def test_unflatten_keeps_the_aggregate_dtype_and_copies() -> None:
    vector = np.arange(6, dtype=np.float64)  # SecAgg+ hands back float64 sums
    first, second = unflatten(vector, [(2,), (2, 2)])
    assert first.dtype == np.float64 and second.tolist() == [[2.0, 3.0], [4.0, 5.0]]
    first[0] = 99.0
    assert vector[0] == 0.0


def test_a_vector_of_the_wrong_length_is_refused_by_name() -> None:
    with pytest.raises(WireShapeError, match="has 5 values; 2 tensors of the model need 6"):
        unflatten(np.zeros(5, np.float32), [(2,), (2, 2)])


def test_a_message_of_several_arrays_is_refused() -> None:
    assert single_vector([np.zeros(3)]).shape == (3,)
    with pytest.raises(WireShapeError, match="got 2 arrays"):
        single_vector([np.zeros(3), np.zeros(2)])
