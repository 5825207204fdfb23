"""The comparison arms of ``fedssl benchmark`` other than the federated run itself.

Centralized SSL (all pretraining data pooled: the upper bound), local-only SSL (each
client alone), supervised training from scratch on the same label budgets, and a
linear probe on raw inputs (the floor). Equal compute: every SSL arm sees each of
its samples ``rounds × local-epochs`` times, as the federated clients do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from common.augment.factory import augment_kind_for, make_augment
from common.config import RunConfig
from common.data.dataset import Dataset
from common.eval.few_label import few_label_indices
from common.eval.linear_probe import linear_probe
from common.eval.protocol import EvalSplit
from common.local_round import build_model, client_seed, resolve_device
from common.supervised import predict, train_supervised
from common.train import make_optimizer, train_epochs

EncoderHook = Callable[[int, nn.Module], None]


def ssl_pretrain(
    cfg: RunConfig,
    x: np.ndarray,
    epochs: int,
    *,
    seed: int,
    every: int = 0,
    on_checkpoint: EncoderHook | None = None,
) -> nn.Module:
    """Train the run's SSL method on ``x`` alone for ``epochs`` epochs; return the encoder.

    ``on_checkpoint(epoch, encoder)`` is called every ``every`` epochs (for curves).
    """
    device = resolve_device(cfg.device)
    method, _, _ = build_model(cfg, tuple(x.shape[1:]))
    method.to(device)
    opt = make_optimizer(method, "adam", lr=cfg.learning_rate)
    aug = make_augment(augment_kind_for(tuple(x.shape[1:])), cfg.augment_strength).to(device)
    step = every if every > 0 else epochs
    done = 0
    while done < epochs:
        n = min(step, epochs - done)
        train_epochs(
            method,
            x,
            aug,
            epochs=n,
            batch_size=cfg.batch_size,
            optimizer=opt,
            device=device,
            seed=client_seed(seed, done, 0),
        )
        done += n
        if on_checkpoint is not None:
            on_checkpoint(done, method.encoder)
    return method.encoder.eval()


def supervised_arm(
    ds: Dataset,
    split: EvalSplit,
    fractions: list[float],
    seeds: list[int],
    steps: int,
    device: str,
) -> dict[str, Any]:
    """Accuracy of end-to-end supervised training per label fraction (1.0 = all labels)."""
    ytr, yte = ds.y[split.probe_train], ds.y[split.probe_test]
    classes = int(max(ytr.max(), yte.max()) + 1)
    out: dict[str, Any] = {}
    for frac in [*fractions, 1.0]:
        accs = []
        for seed in seeds:
            pick = few_label_indices(ytr, frac, seed) if frac < 1.0 else np.arange(len(ytr))
            model = train_supervised(
                ds.x[split.probe_train][pick],
                ytr[pick],
                classes,
                steps=steps,
                seed=seed,
                device=device,
            )
            accs.append(
                float((predict(model, ds.x[split.probe_test], device=device) == yte).mean())
            )
        out[f"{frac:g}"] = {
            "accuracy_mean": float(np.mean(accs)),
            "accuracy_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "labels_used": int(len(pick)),
        }
    return out


def raw_arm(
    ds: Dataset, split: EvalSplit, fractions: list[float], seeds: list[int]
) -> dict[str, Any]:
    """Linear probe on flattened raw inputs: what features must beat."""
    ftr = ds.x[split.probe_train].reshape(len(split.probe_train), -1)
    fte = ds.x[split.probe_test].reshape(len(split.probe_test), -1)
    ytr, yte = ds.y[split.probe_train], ds.y[split.probe_test]
    out: dict[str, Any] = {"linear": linear_probe(ftr, ytr, fte, yte)}
    for frac in fractions:
        accs = [
            linear_probe(ftr[p], ytr[p], fte, yte)["accuracy"]
            for p in (few_label_indices(ytr, frac, s) for s in seeds)
        ]
        out[f"few-label {frac:g}"] = {"accuracy_mean": float(np.mean(accs))}
    return out
