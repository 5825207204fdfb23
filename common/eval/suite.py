"""All evaluation protocols for one encoder on one labeled data set, in one JSON-able dict.

The features are computed once and shared by the linear probe, kNN and few-label runs,
so adding a protocol costs its fit, not another pass through the encoder. Everything
is scored on ``split.probe_test``, which the protocol of ``common.eval.protocol`` keeps
out of pretraining (for HAPT: users 22-30, never seen).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from common.data.dataset import Dataset
from common.errors import BadInputError
from common.eval.embed import embed
from common.eval.few_label import few_label_probe
from common.eval.knn import DEFAULT_K, DEFAULT_TEMPERATURE, knn_probe
from common.eval.linear_probe import linear_probe
from common.eval.protocol import EvalSplit

PROTOCOLS = ("linear", "knn", "few-label")
DEFAULT_FRACTIONS = (0.01, 0.05, 0.1)
DEFAULT_SEEDS = (0, 1, 2)


class EvaluationError(BadInputError):
    """The encoder, the data or the options cannot be evaluated; the message says why."""


def check_protocols(protocols: Sequence[str], fractions: Sequence[float]) -> None:
    """Refuse unknown protocol names and few-label fractions outside (0, 1]."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown or not protocols:
        raise EvaluationError(
            f"unknown protocol(s) {unknown or list(protocols)}; valid: {', '.join(PROTOCOLS)}"
        )
    bad = [f for f in fractions if not (np.isfinite(f) and 0.0 < f <= 1.0)]
    if bad or ("few-label" in protocols and not fractions):
        raise EvaluationError(f"few-label fractions must be in (0, 1], got {list(fractions)}")


def check_encoder_fits(encoder: nn.Module, ds: Dataset, device: str | torch.device = "cpu") -> int:
    """Run two samples through ``encoder``; return its feature width or say what does not fit."""
    shape = ds.input_shape
    wanted = getattr(encoder, "in_channels", None)
    if isinstance(wanted, int) and wanted != shape[0]:
        raise EvaluationError(
            f"the encoder takes {wanted} input channels but {ds.name} samples have shape "
            f"{shape} ({shape[0]} channels)"
        )
    try:
        out = embed(encoder, ds.x[:2], device=device)
    except (RuntimeError, ValueError) as exc:
        raise EvaluationError(
            f"the encoder does not accept {ds.name} samples of shape {shape}: {exc}"
        ) from None
    if out.ndim != 2:
        raise EvaluationError(f"the encoder returns shape {out.shape[1:]} per sample, not a vector")
    return int(out.shape[1])


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single seed)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def _few_label(
    ftr: np.ndarray,
    ytr: np.ndarray,
    fte: np.ndarray,
    yte: np.ndarray,
    fractions: Sequence[float],
    seeds: Sequence[int],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for fraction in fractions:
        t0 = time.perf_counter()
        runs = [
            {"seed": int(s), **few_label_probe(ftr, ytr, fte, yte, float(fraction), int(s))}
            for s in seeds
        ]
        acc_mean, acc_std = _mean_std([r["accuracy"] for r in runs])
        f1_mean, f1_std = _mean_std([r["macro_f1"] for r in runs])
        out[f"{fraction:g}"] = {
            "fraction": float(fraction),
            "accuracy_mean": acc_mean,
            "accuracy_std": acc_std,
            "macro_f1_mean": f1_mean,
            "macro_f1_std": f1_std,
            "labels_used": int(runs[0]["labels_used"]),  # the same for every seed
            "runs": runs,
            "seconds": round(time.perf_counter() - t0, 3),
        }
    return out


def describe(protocol: str, k: int, temperature: float | None) -> str:
    """One sentence per protocol, stored next to its numbers."""
    if protocol == "linear":
        return "standardised multinomial logistic regression on frozen features, all probe-train labels"
    if protocol == "knn":
        vote = (
            "majority vote"
            if temperature is None
            else f"votes weighted by exp(sim/{temperature:g})"
        )
        return f"weighted kNN (Wu et al. 2018): k={k} cosine-nearest probe-train features, {vote}"
    return (
        "linear probe fitted on a stratified seeded sample of each fraction of every class's "
        "probe-train labels (at least 1 per class); mean and sample std over seeds"
    )


def evaluate_encoder(
    encoder: nn.Module,
    ds: Dataset,
    split: EvalSplit,
    protocols: Sequence[str] = PROTOCOLS,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    device: str | torch.device = "cpu",
    knn_k: int = DEFAULT_K,
    knn_temperature: float | None = DEFAULT_TEMPERATURE,
) -> dict[str, Any]:
    """Embed ``split.probe_train`` and ``split.probe_test`` once and run each protocol.

    Returns ``{"dataset", "protocol", "probe_train_samples", "probe_test_samples",
    "feature_dim", "results": {name: figures}, "descriptions": {name: sentence}}``;
    few-label figures are keyed by fraction (``"0.01"``). ``encoder`` is moved to ``device``.
    """
    protocols = list(dict.fromkeys(protocols))
    check_protocols(protocols, fractions)
    if "few-label" in protocols and not seeds:
        raise EvaluationError("few-label needs at least one seed")
    if not split.can_probe:
        raise EvaluationError(f"{ds.name}: no labeled samples to train and test a probe on")
    encoder.to(device)
    check_encoder_fits(encoder, ds, device)
    t0 = time.perf_counter()
    ftr = embed(encoder, ds.x[split.probe_train], device=device)
    fte = embed(encoder, ds.x[split.probe_test], device=device)
    if not (np.isfinite(ftr).all() and np.isfinite(fte).all()):
        raise EvaluationError(f"the encoder produced non-finite features on {ds.name}")
    ytr, yte = ds.y[split.probe_train], ds.y[split.probe_test]
    if len(np.unique(ytr)) < 2:
        raise EvaluationError(f"{ds.name}: the probe-train labels hold fewer than two classes")
    out: dict[str, Any] = {
        "dataset": ds.name,
        "protocol": split.description,
        "probe_train_samples": int(len(ytr)),
        "probe_test_samples": int(len(yte)),
        "classes": int(len(np.unique(ytr))),
        "feature_dim": int(ftr.shape[1]),
        "embed_seconds": round(time.perf_counter() - t0, 3),
        "results": {},
        "descriptions": {p: describe(p, knn_k, knn_temperature) for p in protocols},
    }
    for name in protocols:
        t1 = time.perf_counter()
        if name == "linear":
            res: dict[str, Any] = dict(linear_probe(ftr, ytr, fte, yte))
        elif name == "knn":
            res = dict(
                knn_probe(ftr, ytr, fte, yte, k=knn_k, temperature=knn_temperature, device=device)
            )
            res.update(k=int(knn_k), temperature=knn_temperature, metric="cosine")
        else:
            res = _few_label(ftr, ytr, fte, yte, fractions, seeds)
        if name != "few-label":
            res["seconds"] = round(time.perf_counter() - t1, 3)
        out["results"][name] = res
    return out
