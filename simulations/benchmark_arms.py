"""Run every arm of ``fedssl benchmark`` and collect their figures in one dict."""

from __future__ import annotations

import glob
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from common.client_data import client_indices, load_with_split
from common.config import RunConfig
from common.eval.embed import embed
from common.eval.linear_probe import linear_probe
from common.eval.suite import evaluate_encoder
from common.serialize import load_encoder
from simulations.baselines import raw_arm, ssl_pretrain, supervised_arm

log = logging.getLogger("fedssl.benchmark")


def _linear(encoder: nn.Module, cfg: RunConfig) -> float:
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    ftr = embed(encoder, ds.x[split.probe_train])
    fte = embed(encoder, ds.x[split.probe_test])
    return linear_probe(ftr, ds.y[split.probe_train], fte, ds.y[split.probe_test])["accuracy"]


def _suite(encoder: nn.Module, cfg: RunConfig, plan: dict[str, Any]) -> dict[str, Any]:
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    res = evaluate_encoder(encoder, ds, split, fractions=plan["fractions"], seeds=plan["seeds"])
    return res["results"]


def run_arms(cfg: RunConfig, plan: dict[str, Any], out: Path, fed_algorithm: str) -> dict[str, Any]:
    from simulations.benchmark import simulate_federated

    ds, split = load_with_split(cfg.dataset, cfg.seed)
    parts = client_indices(cfg)
    # Equal compute: each sample takes part in rounds x fraction-train rounds on average
    # and is then seen local-epochs times.
    round_epochs = cfg.local_epochs * cfg.fraction_train  # epochs of data per round
    epochs = max(1, round(cfg.num_server_rounds * round_epochs))
    results: dict[str, Any] = {
        "dataset": cfg.dataset,
        "protocol": split.description,
        "method": cfg.method,
        "fed_algorithm": fed_algorithm,
        "clients": len(parts),
        "rounds": cfg.num_server_rounds,
        "local_epochs": cfg.local_epochs,
        "fraction_train": cfg.fraction_train,
        "ssl_epochs_per_sample": epochs,
        "plan": plan,
        "arms": {},
        "curves": {},
        "seconds": {},
    }
    arms, curves, secs = results["arms"], results["curves"], results["seconds"]

    log.info(
        "[1/6] federated SSL with SecAgg+: %d clients x %d rounds",
        len(parts),
        cfg.num_server_rounds,
    )
    fed_dir = out / "federated"
    secs["federated"] = simulate_federated(cfg, fed_dir, fed_algorithm)
    ckpts = sorted(glob.glob(str(fed_dir / "checkpoints" / "round-*.pt")))
    curves["federated"] = [
        [int(Path(c).stem.split("-")[1]), _linear(load_encoder(c), cfg)] for c in ckpts
    ]
    arms["federated"] = _suite(load_encoder(fed_dir / "encoder.pt"), cfg, plan)
    arms["random_init"] = _suite(load_encoder(ckpts[0]), cfg, plan)

    log.info("[2/6] centralized SSL on the pooled data: %d epochs", epochs)
    t0 = time.perf_counter()
    curve: list[list[float]] = [[0, curves["federated"][0][1]]]

    def record(epoch: int, enc: nn.Module) -> None:
        curve.append([epoch / round_epochs, _linear(enc.eval(), cfg)])
        enc.train()

    pooled = ds.x[split.pretrain]
    central = ssl_pretrain(
        cfg,
        pooled,
        epochs,
        seed=cfg.seed,
        every=max(1, round(round_epochs)),
        on_checkpoint=record,
    )
    curves["centralized"] = curve
    arms["centralized"] = _suite(central, cfg, plan)
    secs["centralized"] = time.perf_counter() - t0

    n_local = plan["local_clients"] or len(parts)
    log.info("[3/6] local-only SSL: %d clients alone, %d epochs each", n_local, epochs)
    t0 = time.perf_counter()
    local = []
    for pid, idx in enumerate(parts[:n_local]):
        enc = ssl_pretrain(cfg, ds.x[idx], epochs, seed=cfg.seed + pid + 1)
        local.append(
            _suite(
                enc, cfg, {**plan, "fractions": plan["fractions"][:1], "seeds": plan["seeds"][:1]}
            )
        )
    lin = np.array([r["linear"]["accuracy"] for r in local])
    arms["local_only"] = {
        "linear": {
            "accuracy": float(lin.mean()),
            "worst": float(lin.min()),
            "best": float(lin.max()),
        },
        "knn": {"accuracy": float(np.mean([r["knn"]["accuracy"] for r in local]))},
        "clients_evaluated": n_local,
    }
    secs["local_only"] = time.perf_counter() - t0

    log.info("[4/6] supervised from scratch on the same label budgets")
    t0 = time.perf_counter()
    arms["supervised"] = supervised_arm(
        ds, split, plan["fractions"], plan["seeds"], plan["supervised_steps"], cfg.device
    )
    secs["supervised"] = time.perf_counter() - t0

    log.info("[5/6] linear probe on raw inputs")
    arms["raw"] = raw_arm(ds, split, plan["fractions"], plan["seeds"])
    log.info("[6/6] report")
    return results
