"""Run every arm of ``fedssl benchmark`` and collect their figures in one dict."""

from __future__ import annotations

import logging
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from common.client_data import client_indices, load_with_split
from common.config import RunConfig
from common.eval.linear_probe import probe_encoder
from common.eval.suite import evaluate_encoder
from common.serialize import load_encoder
from server.outputs import checkpoint_path, read_rows, round_checkpoints
from simulations.benchmark.baselines import raw_arm, ssl_pretrain, supervised_arm
from simulations.benchmark.parts import Part, Parts, merge
from simulations.benchmark.seeds import combine_trees, mean_curve

log = logging.getLogger("fedssl.benchmark")


def _linear(encoder: nn.Module, cfg: RunConfig) -> float:
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    return float(probe_encoder(encoder, ds, split)["accuracy"])


def _suite(encoder: nn.Module, cfg: RunConfig, plan: dict[str, Any]) -> dict[str, Any]:
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    res = evaluate_encoder(encoder, ds, split, fractions=plan["fractions"], seeds=plan["seeds"])
    return res["results"]


def run_arms(
    cfg: RunConfig, plan: dict[str, Any], out: Path, parts: Parts, ray_address: str = ""
) -> dict[str, Any]:
    """Every arm at equal compute: each sample takes part in rounds x fraction-train
    rounds on average and is then seen local-epochs times. The SSL arms run once per
    pretraining seed (figures: mean, with their standard errors in ``arms_se``); the
    label-only arms (supervised, raw) once. Each finished arm is kept in ``parts``."""
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    round_epochs = cfg.local_epochs * cfg.fraction_train  # epochs of data per round
    epochs = max(1, round(cfg.num_server_rounds * round_epochs))
    results: dict[str, Any] = {
        "dataset": cfg.dataset,
        "protocol": split.description,
        "method": cfg.method,
        "fed_algorithm": cfg.fed_algorithm,
        "clients": len(client_indices(cfg)),
        "rounds": cfg.num_server_rounds,
        "local_epochs": cfg.local_epochs,
        "fraction_train": cfg.fraction_train,
        "ssl_epochs_per_sample": epochs,
        "plan": plan,
    }
    by_seed = {}
    for i, seed in enumerate(plan["pretrain_seeds"], 1):
        log.info("pretraining seed %d (%d of %d)", seed, i, len(plan["pretrain_seeds"]))
        seed_cfg = cfg.replace(seed=seed)
        budget = (epochs, round_epochs)
        by_seed[str(seed)] = _ssl_arms(seed_cfg, plan, out, budget, parts, ray_address)
    _combine_seeds(results, by_seed)
    log.info("[4/6] supervised from scratch on the same label budgets")
    merge(results, parts.run("supervised", partial(_supervised_arm, cfg, plan)))
    log.info("[5/6] linear probe on raw inputs")
    results["arms"]["raw"] = raw_arm(ds, split, plan["fractions"], plan["seeds"])
    log.info("[6/6] report")
    return results


def _ssl_arms(
    cfg: RunConfig,
    plan: dict[str, Any],
    out: Path,
    budget: tuple[int, float],
    parts: Parts,
    ray_address: str,
) -> dict[str, Any]:
    """Federated (and its round 0, random-init), centralized and local-only SSL at one
    seed: the seed fixes the partition, the initial model and the training (and, for
    data sets without a fixed protocol, the held-out split). ``budget``: the epochs of
    the centralized and local-only arms, and the epochs of data per federated round."""
    clients = client_indices(cfg)
    epochs, round_epochs = budget
    run: dict[str, Any] = {"arms": {}, "curves": {}, "curves_seconds": {}, "seconds": {}}
    seed = f"seed-{cfg.seed}"
    log.info(
        "[1/6] federated SSL with SecAgg+: %d clients x %d rounds",
        len(clients),
        cfg.num_server_rounds,
    )
    fed_dir = out / "federated" / seed
    merge(
        run,
        parts.run(f"{seed}/federated", partial(_federated_arm, cfg, plan, fed_dir, ray_address)),
    )
    log.info("[2/6] centralized SSL on the pooled data: %d epochs", epochs)
    start = run["curves"]["federated"][0][1]  # round 0: the random init all arms start from
    central = partial(_centralized_arm, cfg, plan, epochs, round_epochs, start)
    merge(run, parts.run(f"{seed}/centralized", central))
    n_local = plan["local_clients"] or len(clients)
    log.info("[3/6] local-only SSL: %d clients alone, %d epochs each", n_local, epochs)
    local = partial(_local_only_arm, cfg, plan, clients[:n_local], epochs)
    merge(run, parts.run(f"{seed}/local_only", local))
    return run


def _combine_seeds(results: dict[str, Any], by_seed: dict[str, dict[str, Any]]) -> None:
    """Mean figures and curves over the seeds, standard errors beside them."""
    runs = list(by_seed.values())
    results["arms"], results["arms_se"] = combine_trees([r["arms"] for r in runs])
    for key in ("curves", "curves_seconds"):
        results[key] = {name: mean_curve([r[key][name] for r in runs]) for name in runs[0][key]}
    results["seconds"] = combine_trees([r["seconds"] for r in runs])[0]
    results["by_seed"] = by_seed


def _federated_arm(cfg: RunConfig, plan: dict[str, Any], fed_dir: Path, ray_address: str) -> Part:
    """A real ``fedssl simulate`` run (or, on resume, the finished one already in
    ``fed_dir``); its per-round checkpoints give the curve, round 0 the random-init arm."""
    from simulations.benchmark.federated import simulate_federated

    seconds = simulate_federated(cfg, fed_dir, ray_address)
    curve = federated_curve(cfg, fed_dir, plan["curve_points"])
    random_init = checkpoint_path(fed_dir, 0)
    return {
        "seconds": {"federated": seconds},
        "curves": {"federated": [[c["round"], c["linear"]] for c in curve]},
        "curves_seconds": {"federated": [[c["seconds"], c["linear"]] for c in curve]},
        "arms": {
            "federated": _suite(load_encoder(fed_dir / "encoder.pt"), cfg, plan),
            "random_init": _suite(load_encoder(random_init), cfg, plan),
        },
    }


def thin_rounds(rounds: list[int], points: int) -> list[int]:
    """At most ``points`` of ``rounds`` after the first, evenly spaced and always the
    last, plus the first (round 0); ``points`` <= 0 keeps every round. Each probe embeds
    the whole data set, so a run of many rounds on large data probes a subset."""
    later = rounds[1:]
    if points <= 0 or len(later) <= points:
        return list(rounds)
    step = math.ceil(len(later) / points)
    kept = later[step - 1 :: step]
    if kept[-1] != later[-1]:
        kept.append(later[-1])
    return rounds[:1] + kept


def federated_curve(cfg: RunConfig, run_dir: Path, points: int = 0) -> list[dict[str, Any]]:
    """A finished run's linear probe after its rounds (round 0: the random init; every
    round, or ``points`` of them as ``thin_rounds`` picks), with the wall seconds its
    rounds had taken by then (their own durations, summed)."""
    rows = read_rows(run_dir)
    ended = np.cumsum([0.0] + [float(r.get("seconds", 0.0)) for r in rows if r.get("round")])
    curve = []
    found = round_checkpoints(run_dir)
    picked = thin_rounds(list(found), points)
    log.info(
        "linear probe of %d of the %d round checkpoints in %s", len(picked), len(found), run_dir
    )
    for i, rnd in enumerate(picked, 1):
        if i % 10 == 0:
            log.info("  %d of %d checkpoints probed", i, len(picked))
        path = found[rnd]
        seconds = float(ended[min(rnd, len(ended) - 1)])
        curve.append({"round": rnd, "linear": _linear(load_encoder(path), cfg), "seconds": seconds})
    return curve


def _centralized_arm(
    cfg: RunConfig, plan: dict[str, Any], epochs: int, round_epochs: float, start: float
) -> Part:
    """Pooled SSL, probed every federated round's worth of epochs; ``start`` is the
    random init's linear probe (the curve's first point)."""
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    curve: list[list[float]] = [[0, start]]
    timed: list[list[float]] = [[0.0, curve[0][1]]]
    probing = [0.0]  # seconds spent in the probes, not in training
    t0 = time.perf_counter()

    def record(epoch: int, enc: nn.Module) -> None:
        t = time.perf_counter()
        curve.append([epoch / round_epochs, _linear(enc.eval(), cfg)])
        timed.append([t - t0 - probing[0], curve[-1][1]])
        probing[0] += time.perf_counter() - t
        enc.train()

    every = max(1, round(round_epochs))
    central = ssl_pretrain(
        cfg, ds.x[split.pretrain], epochs, seed=cfg.seed, every=every, on_checkpoint=record
    )
    return {
        "curves": {"centralized": curve},
        "curves_seconds": {"centralized": timed},
        "arms": {"centralized": _suite(central, cfg, plan)},
    }


def _local_only_arm(
    cfg: RunConfig,
    plan: dict[str, Any],
    clients: list[np.ndarray],
    epochs: int,
) -> Part:
    """Each client alone, scored on linear and kNN (one fraction and seed: it is many runs)."""
    ds, _ = load_with_split(cfg.dataset, cfg.seed)
    light = {**plan, "fractions": plan["fractions"][:1], "seeds": plan["seeds"][:1]}
    local = [
        _suite(ssl_pretrain(cfg, ds.x[idx], epochs, seed=cfg.seed + pid + 1), cfg, light)
        for pid, idx in enumerate(clients)
    ]
    lin = np.array([r["linear"]["accuracy"] for r in local])
    figures = {
        "linear": {
            "accuracy": float(lin.mean()),
            "worst": float(lin.min()),
            "best": float(lin.max()),
        },
        "knn": {"accuracy": float(np.mean([r["knn"]["accuracy"] for r in local]))},
        "clients_evaluated": len(clients),
    }
    return {"arms": {"local_only": figures}}


def _supervised_arm(cfg: RunConfig, plan: dict[str, Any]) -> Part:
    ds, split = load_with_split(cfg.dataset, cfg.seed)
    figures = supervised_arm(
        ds, split, plan["fractions"], plan["seeds"], plan["supervised_steps"], cfg.device
    )
    return {"arms": {"supervised": figures}}
