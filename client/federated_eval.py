"""Federated evaluation on one device: how good the delivered global encoder is on this
device's own data. Flower-free: the ClientApp's evaluate handler calls it, and so can a
test that computes the same figures centrally.

Only declared scalars leave the device, each with its count:

- always (no labels needed): ``pretext-loss`` on a seeded held-out share of the local
  windows, and ``embedding-std``, the mean over dimensions of the per-dimension standard
  deviation of the L2-normalised embeddings (the collapse indicator of BYOL/SimSiam
  work: near 0 when every window maps to one point, about 1/sqrt(d) for embeddings
  spread evenly over the sphere; what matters is its trend, since encoder features
  after ReLU and pooling sit well below that);
- with labels: the accuracy of the personal few-label head the device runtime would fit
  (the first ``eval-labels-per-class`` labeled windows of each class, as the runtime
  calibrates on the first labels it gets; the later ones test it, less the overlapping
  neighbours of the fitted windows) and the kNN accuracy on the same split.

Anything that cannot be evaluated (too few windows, labels out of range) is said in
``skipped``; what can still be measured is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from common.config import RunConfig
from common.config_values import Scalar

MIN_WINDOWS = 4  # two held-out windows for the pretext loss, two to embed
HOLDOUT = 0.2


@dataclass(frozen=True)
class EvalSettings:
    labels_per_class: int = 10
    eval_classes: int = 0  # labels 0..eval_classes-1 are evaluated; 0 = all labels
    label_range: int = 0  # labels must be < label_range (0 = no check)
    seed: int = 0
    knn_k: int = 20


def evaluate_on_device(
    cfg: RunConfig,
    arrays: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray | None,
    settings: EvalSettings,
) -> dict[str, Scalar]:
    """The device's figures for the global model given by its shared ``arrays``."""
    from common.augment.factory import make_augment
    from common.eval.embed import embed
    from common.local_round import method_from_arrays
    from common.train import pretext_loss

    if len(x) < MIN_WINDOWS or not np.isfinite(x).all():
        why = "non-finite values" if len(x) >= MIN_WINDOWS else f"only {len(x)} windows"
        return {"skipped": f"local data cannot be evaluated: {why}"}
    method = method_from_arrays(cfg, tuple(x.shape[1:]), arrays)
    rng = np.random.default_rng(settings.seed)
    held_out = np.sort(rng.permutation(len(x))[: max(2, round(HOLDOUT * len(x)))])
    augment = make_augment("sensor" if x.ndim == 3 else "image", cfg.augment_strength)
    loss = pretext_loss(method, x[held_out], augment, batch_size=cfg.batch_size, seed=settings.seed)
    z = embed(method.encoder, x)
    out: dict[str, Scalar] = {
        "pretext-loss": loss,
        "pretext-samples": len(held_out),
        "embedding-std": embedding_std(z),
        "embedding-samples": len(z),
    }
    if y is not None:
        out.update(_labeled_figures(z, np.asarray(y), settings))
    return out


def embedding_std(z: np.ndarray) -> float:
    """Mean per-dimension std of the L2-normalised embeddings."""
    unit = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return float(unit.std(axis=0).mean())


def _labeled_figures(z: np.ndarray, y: np.ndarray, s: EvalSettings) -> dict[str, Scalar]:
    """Personal head and kNN accuracy on a seeded few-label split of the labeled windows."""
    bad = (y < -1) | ((y >= s.label_range) if s.label_range else np.zeros_like(y, bool))
    if bad.any():
        values = sorted(set(y[bad].tolist()))[:5]
        return {"skipped": f"labels out of range: {values} (this run has {s.label_range} classes)"}
    keep = (y >= 0) & ((y < s.eval_classes) if s.eval_classes else (y >= 0))
    train, test = few_label_split(y, keep, s.labels_per_class)
    if len(np.unique(y[train])) < 2 or len(test) == 0:
        return {"skipped": f"too few labeled windows to evaluate ({int(keep.sum())})"}
    from client.runtime.head import PersonalHead
    from common.eval.knn import knn_classify

    head = PersonalHead().fit(z[train], y[train])
    accuracy = float(np.mean(head.predict(z[test]) == y[test]))
    k = min(s.knn_k, len(train))
    knn = knn_classify(z[train], y[train], z[test], k=k)
    return {
        "accuracy": accuracy,
        "accuracy-samples": len(test),
        "knn-accuracy": float(np.mean(knn == y[test])),
        "labels-used": len(train),
    }


def few_label_split(
    y: np.ndarray, keep: np.ndarray, per_class: int
) -> tuple[np.ndarray, np.ndarray]:
    """The device runtime's calibration: the first ``per_class`` kept windows of each
    class, in the device's own (time) order, to fit on, leaving at least one of the class
    to test; the later kept windows test it, except the neighbours of a fitted window
    (sensor windows overlap by half: a neighbour is half the same samples)."""
    train: list[int] = []
    for c in np.unique(y[keep]):
        idx = np.flatnonzero(keep & (y == c))
        if len(idx) >= 2:
            train.extend(idx[: min(per_class, len(idx) - 1)].tolist())
    near = np.zeros(len(y), bool)
    for i in train:
        near[max(i - 1, 0) : i + 2] = True
    return np.sort(np.array(train, dtype=np.int64)), np.flatnonzero(keep & ~near)


def settings_from(record: dict[str, Any]) -> EvalSettings:
    return EvalSettings(
        labels_per_class=int(record.get("eval-labels-per-class", 10)),
        eval_classes=int(record.get("eval-classes", 0)),
        label_range=int(record.get("label-range", 0)),
        seed=int(record.get("seed", 0)),
    )
