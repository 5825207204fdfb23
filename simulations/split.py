"""``fedssl split``: one ``.npz`` per device from a data set and a partition.

For trying a deployment with real data: each file is what one device would hold (the
pretraining pool only, unlabeled; HAPT's test users 22-30 never appear), ready for
``fedssl client --data devices/device-NNN.npz``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from common.private_files import open_private


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", default="hapt", help="hapt | digits | fmnist | npz:PATH (default: %(default)s)"
    )
    p.add_argument(
        "--partition",
        default="auto",
        help="auto | natural | iid | dirichlet:ALPHA (default: %(default)s)",
    )
    p.add_argument(
        "--clients", type=int, default=0, help="0 = one per natural client, else 10 (default: 0)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for device-NNN.npz")


def run(args: argparse.Namespace) -> int:
    from common.client_data import client_indices, load_with_split
    from common.config import ConfigError, RunConfig
    from common.data.errors import DataError

    try:
        cfg = RunConfig(
            dataset=args.dataset, partition=args.partition, num_clients=args.clients, seed=args.seed
        )
        cfg.validate()
        cfg.check_names()
        ds, _ = load_with_split(cfg.dataset, cfg.seed)
        parts = client_indices(cfg)
    except (ConfigError, DataError) as exc:
        print(f"fedssl split: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    for i, idx in enumerate(parts):
        path = out / f"device-{i:03d}.npz"
        # A device's private data: readable by its owner only (0600), from the first byte.
        with open_private(path) as fh:
            np.savez(fh, x=ds.x[idx].astype(np.float32))  # unlabeled: labels stay off
        print(f"{path}: {len(idx)} samples of shape {tuple(ds.x.shape[1:])}")
    return 0
