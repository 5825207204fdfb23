"""Benchmark: local SSL training throughput on CPU and CUDA, side by side.

    python -m simulations.bench.device --seconds 20

Trains SimCLR (and BYOL) on synthetic tensors of the real shapes — HAPT windows
(6, 128) with the 1D CNN and Fashion-MNIST images (1, 28, 28) with the residual
CNN — with ``common.train.train_epochs``, the loop every client runs, and prints
samples per second per device. Throughput does not depend on the pixel values, so
no data set is needed; the CUDA path is also checked end to end with one client
round (``run_local_round``) whose delta must be finite and non-zero.
Framework-free: runs where only torch and numpy are installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from common.augment.factory import make_augment
from common.config import RunConfig
from common.local_round import build_model, initial_global_arrays, run_local_round
from common.train import make_optimizer, train_epochs

WORKLOADS = {"sensor": (6, 128), "image": (1, 28, 28)}


def throughput(kind: str, method: str, device: str, batch: int, seconds: float) -> dict:
    shape = WORKLOADS[kind]
    n = batch * 8
    x = torch.randn(n, *shape) if kind == "sensor" else torch.rand(n, *shape)
    cfg = RunConfig(method=method, batch_size=batch)
    model, _, _ = build_model(cfg, shape)
    model.to(device)
    opt = make_optimizer(model, "adam", lr=1e-3)
    aug = make_augment(kind).to(device)
    train_epochs(model, x, aug, epochs=1, batch_size=batch, optimizer=opt, device=device)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    samples, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        res = train_epochs(model, x, aug, epochs=1, batch_size=batch, optimizer=opt, device=device)
        samples += res.steps * batch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    el = time.perf_counter() - t0
    return {
        "kind": kind,
        "method": method,
        "device": device,
        "batch": batch,
        "samples_per_s": samples / el,
        "threads": torch.get_num_threads(),
    }


def cuda_round_check() -> dict:
    cfg = RunConfig(device="cuda", local_epochs=1, batch_size=128)
    x = np.random.default_rng(0).normal(size=(1024, 6, 128)).astype(np.float32)
    glob = initial_global_arrays(cfg, x.shape[1:])
    res = run_local_round(cfg, x, glob, None, server_round=1, partition_id=0)
    finite = all(np.isfinite(d).all() for d in res.delta)
    moved = max(float(np.abs(d).max()) for d in res.delta)
    return {"finite": bool(finite), "max_abs_delta": moved, "loss": res.metrics["train-loss"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per cell")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args(argv)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    info = {
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    print(json.dumps(info), flush=True)
    rows = []
    for kind in WORKLOADS:
        for method in ("simclr", "byol"):
            for dev in devices:
                r = throughput(kind, method, dev, args.batch, args.seconds)
                rows.append(r)
                print(
                    f"{kind:<7}{method:<8}{dev:<6} batch {r['batch']:<5} {r['samples_per_s']:>10.0f} samples/s",
                    flush=True,
                )
    out = {"info": info, "rows": rows}
    if "cuda" in devices:
        out["cuda_round"] = cuda_round_check()
        print("cuda client round:", out["cuda_round"], flush=True)
        for kind in WORKLOADS:
            for method in ("simclr", "byol"):
                c = next(
                    r
                    for r in rows
                    if r["kind"] == kind and r["method"] == method and r["device"] == "cpu"
                )
                g = next(
                    r
                    for r in rows
                    if r["kind"] == kind and r["method"] == method and r["device"] == "cuda"
                )
                print(
                    f"{kind}/{method}: CUDA {g['samples_per_s'] / c['samples_per_s']:.1f}x the CPU ({c['threads']} threads)"
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
