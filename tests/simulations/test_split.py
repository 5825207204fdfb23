"""`fedssl split` writes one unlabeled .npz per device that `fedssl client` accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.cli import main
from common.client_data import client_indices
from common.config import RunConfig
from common.data.registry import load_dataset


def test_split_writes_the_partition_one_file_per_device(tmp_path: Path) -> None:
    rc = main(
        [
            "split",
            "--dataset",
            "digits",
            "--partition",
            "iid",
            "--clients",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    files = sorted(tmp_path.glob("device-*.npz"))
    assert len(files) == 4
    parts = client_indices(RunConfig(dataset="digits", partition="iid", num_clients=4))
    full = load_dataset("digits")
    for path, idx in zip(files, parts, strict=True):
        assert path.stat().st_mode & 0o777 == 0o600, path  # a device's private data
        with np.load(path) as z:
            assert z.files == ["x"]  # no labels leave for the device
        ds = load_dataset(f"npz:{path}")
        np.testing.assert_array_equal(ds.x, full.x[idx])


def test_split_refuses_an_unknown_data_set(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["split", "--dataset", "nope", "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err
