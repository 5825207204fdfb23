"""Centralized SSL on the pooled pretraining data: the upper bound federated SSL is
measured against, with a probe every few epochs.

    python -m simulations.benchmark.centralized --dataset hapt --epochs 30
    python -m simulations.benchmark.centralized --dataset fmnist --epochs 60 --batch-size 256 --device cuda

Framework-free (no Flower): runs wherever torch, numpy and scikit-learn are installed,
so it also serves as the GPU measurement of the image suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from torch import nn

from common.client_data import load_with_split
from common.config import RunConfig
from common.eval.suite import evaluate_encoder
from simulations.benchmark.baselines import ssl_pretrain


def main(argv: list[str] | None = None) -> int:
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
    p.add_argument("--json", default="")
    args = p.parse_args(argv)
    cfg = RunConfig(
        dataset=args.dataset,
        method=args.method,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        device=args.device,
        seed=args.seed,
    )
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    x = ds.x[split.pretrain]
    print(
        f"{ds.name}: pretraining on {len(x)} samples, probe {len(split.probe_train)} -> "
        f"{len(split.probe_test)} ({split.description})",
        flush=True,
    )
    rows: list[dict] = []
    t0 = time.perf_counter()

    def probe(epoch: int, enc: nn.Module) -> None:
        t = time.perf_counter() - t0
        res = evaluate_encoder(
            enc.eval(), ds, split, protocols=("linear", "knn"), device=args.device
        )
        enc.train()
        row = {
            "epoch": epoch,
            "train_seconds": round(t, 1),
            "linear": res["results"]["linear"]["accuracy"],
            "knn": res["results"]["knn"]["accuracy"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    torch.manual_seed(cfg.seed)
    ssl_pretrain(cfg, x, args.epochs, seed=cfg.seed, every=args.eval_every, on_checkpoint=probe)
    samples = args.epochs * len(x)
    train_s = rows[-1]["train_seconds"] if rows else 0.0
    print(
        f"done: {args.epochs} epochs, about {samples / max(train_s, 1e-9):.0f} samples/s "
        f"including probes, device {args.device}",
        flush=True,
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
