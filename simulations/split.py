"""``fedssl split``: one ``.npz`` per device from a data set and a partition.

For trying a deployment with real data: each file is what one device would hold (the
pretraining pool only, unlabeled; HAPT's test users 22-30 never appear), ready for
``fedssl client --data devices/device-NNN.npz``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common.config_checks import check_names
from common.errors import EXIT_OK
from common.private_files import open_private


def add_arguments(p: argparse.ArgumentParser) -> None:
    from common.run_options import add_run_options

    add_run_options(
        p, only=("dataset", "partition", "num-clients", "seed"), title="data", with_set=False
    )
    p.add_argument("--out", required=True, help="folder for device-NNN.npz")


def run(args: argparse.Namespace) -> int:
    from common.client_data import client_indices, load_with_split
    from common.run_options import config_from_args

    cfg = config_from_args(args)
    check_names(cfg)
    ds, _ = load_with_split(cfg.dataset, cfg.seed)
    parts = client_indices(cfg)
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    for i, idx in enumerate(parts):
        path = out / f"device-{i:03d}.npz"
        # A device's private data: readable by its owner only (0600), from the first byte.
        with open_private(path) as fh:
            np.savez(fh, x=ds.x[idx].astype(np.float32))  # unlabeled: labels stay off
        print(f"{path}: {len(idx)} samples of shape {tuple(ds.x.shape[1:])}")
    return EXIT_OK
