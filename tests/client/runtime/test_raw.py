"""Raw features: per-channel statistics for sensor windows, the flattened sample otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from client.runtime.encoders import EmbedError
from client.runtime.raw import RawFeatures


def test_per_channel_statistics() -> None:
    x = np.stack([np.arange(8.0), -np.arange(8.0)])[None].astype(np.float32)  # (1, 2, 8)
    raw = RawFeatures((2, 8))
    assert raw.kind == "raw-stats" and raw.out_dim == 8
    z = raw.embed(x)
    assert z.shape == (1, 8) and z.dtype == np.float32
    np.testing.assert_allclose(
        z[0],
        [3.5, -3.5, np.std(np.arange(8.0))] * 1 + [np.std(np.arange(8.0)), 0, -7, 7, 0],
        rtol=1e-6,
    )


def test_images_are_flattened_and_bad_input_refused() -> None:
    raw = RawFeatures((1, 4, 4))
    assert raw.kind == "raw-flat" and raw.embed(np.ones((3, 1, 4, 4))).shape == (3, 16)
    with pytest.raises(EmbedError, match="shape"):
        RawFeatures((2, 8)).embed(np.zeros((1, 3, 8)))
    with pytest.raises(ValueError, match="mode"):
        RawFeatures((2, 8), mode="fft")
    with pytest.raises(ValueError, match="sensor windows"):
        RawFeatures((1, 4, 4), mode="stats")
