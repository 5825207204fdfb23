"""Centralized SSL on the pooled pretraining data: the upper bound federated SSL is
measured against, with a probe every few epochs.

    python -m simulations.benchmark.centralized --dataset hapt --epochs 30
    python -m simulations.benchmark.centralized --epochs 60 --set temperature=0.2
    python -m simulations.benchmark.centralized --dataset fmnist --epochs 60 --batch-size 256 --device cuda

``--set KEY=VALUE`` takes any run-config key that shapes pretraining (``temperature``,
``augment-strength``, ...). Prints one JSON row per probe (linear and kNN); the last
row, the final encoder's, adds few-label probes (1 % and 10 % of the labels, label
seeds 0-2): what a federated run's final encoder is compared with. A bad key or data
set is refused by name (exit 2).

Framework-free (no Flower): runs wherever torch, numpy and scikit-learn are installed,
so it also serves as the GPU measurement of the image suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch
from torch import nn

from common.client_data import load_with_split
from common.config import RunConfig
from common.config_values import parse_set_items
from common.data.dataset import Dataset
from common.errors import BadInputError
from common.eval.protocol import EvalSplit
from common.eval.suite import evaluate_encoder
from simulations.benchmark.baselines import ssl_pretrain

FINAL_FRACTIONS = (0.01, 0.1)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", default="hapt")
    p.add_argument("--method", default="simclr")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE run-config key")
    p.add_argument("--json", default="")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    return args


def _config(args: argparse.Namespace) -> RunConfig:
    """The run config of the flags and ``--set`` keys, validated (bad keys are named)."""
    flat: dict[str, Any] = {
        "dataset": args.dataset,
        "method": args.method,
        "batch-size": args.batch_size,
        "learning-rate": args.lr,
        "device": args.device,
        "seed": args.seed,
    }
    flat.update(parse_set_items(args.set))
    return RunConfig.from_flat(flat)


def _figures(enc: nn.Module, ds: Dataset, split: EvalSplit, cfg: RunConfig, final: bool) -> dict:
    protocols = ("linear", "knn", "few-label") if final else ("linear", "knn")
    res = evaluate_encoder(
        enc.eval(), ds, split, protocols=protocols, fractions=FINAL_FRACTIONS, device=cfg.device
    )["results"]
    row = {"linear": res["linear"]["accuracy"], "knn": res["knn"]["accuracy"]}
    for frac, figures in res.get("few-label", {}).items():
        row[f"labels-{frac}"] = figures["accuracy_mean"]
    return row


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        cfg = _config(args)
        ds, split = load_with_split(cfg.dataset, cfg.seed)
    except BadInputError as exc:  # a bad key, value or data set: the message, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    x = ds.x[split.pretrain]
    print(
        f"{ds.name}: pretraining on {len(x)} samples, probe {len(split.probe_train)} -> "
        f"{len(split.probe_test)} ({split.description})",
        flush=True,
    )
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def probe(epoch: int, enc: nn.Module) -> None:
        t = time.perf_counter() - t0
        row = {"epoch": epoch, "train_seconds": round(t, 1)}
        row.update(_figures(enc, ds, split, cfg, final=epoch == args.epochs))
        enc.train()
        rows.append(row)
        print(json.dumps(row), flush=True)

    torch.manual_seed(cfg.seed)
    ssl_pretrain(cfg, x, args.epochs, seed=cfg.seed, every=args.eval_every, on_checkpoint=probe)
    train_s = rows[-1]["train_seconds"]
    print(
        f"done: {args.epochs} epochs, about {args.epochs * len(x) / max(train_s, 1e-9):.0f} "
        f"samples/s including probes, device {cfg.device}",
        flush=True,
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "config": cfg.to_flat(), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
