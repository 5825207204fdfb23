"""k-nearest-neighbour classifier on frozen features: the SSL yardstick that fits nothing.

Weighted kNN as in Wu et al. 2018 ("Unsupervised feature learning via non-parametric
instance discrimination"), used by most SSL papers since: the k most cosine-similar
training features vote for their label with weight exp(sim / T). Unlike the linear probe
it trains no classifier, so it shows the geometry of the feature space as it is.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

METRICS = ("cosine", "euclidean")
DEFAULT_K = 20
DEFAULT_TEMPERATURE = 0.07


def _check(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, k: int, temperature: float | None
) -> None:
    if train_x.ndim != 2 or test_x.ndim != 2:
        raise ValueError(
            f"kNN needs 2-D features, got train {train_x.shape} and test {test_x.shape}"
        )
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("kNN needs non-empty train and test sets")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"kNN: train features have {train_x.shape[1]} dims, test features {test_x.shape[1]}"
        )
    if train_y.shape != (len(train_x),):
        raise ValueError(f"kNN: {len(train_x)} train features but labels of shape {train_y.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"kNN: k must be a positive int, got {k!r}")
    if temperature is not None and not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"kNN: temperature must be > 0 (or None for a plain vote), got {temperature!r}"
        )


def _similarity(test: torch.Tensor, train: torch.Tensor, metric: str) -> torch.Tensor:
    """(B, N) similarities, larger = nearer: cosine, or minus the Euclidean distance."""
    if metric == "cosine":
        return test @ train.T  # both already L2-normalised
    return -torch.cdist(test, train)


@torch.no_grad()
def knn_classify(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    k: int = DEFAULT_K,
    temperature: float | None = DEFAULT_TEMPERATURE,
    metric: str = "cosine",
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Predicted label of each test feature, by its ``k`` nearest training features.

    ``temperature=T`` weights each neighbour's vote by exp(sim / T) (Wu et al. 2018);
    ``temperature=None`` is a plain majority vote. Ties go to the smallest label. Test
    samples are processed ``batch_size`` at a time, so memory is ``batch_size x N_train``
    similarities (256 x 60k floats = 61 MB) however large the test set is.
    """
    train_x, test_x = np.asarray(train_x), np.asarray(test_x)
    train_y = np.asarray(train_y)
    if metric not in METRICS:
        raise ValueError(f"kNN: unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    _check(train_x, train_y, test_x, k, temperature)
    if batch_size < 1:
        raise ValueError(f"kNN: batch_size must be positive, got {batch_size}")
    classes, train_cls = np.unique(train_y, return_inverse=True)
    k = min(int(k), len(train_x))
    train = torch.as_tensor(train_x, dtype=torch.float32, device=device)
    test_all = torch.as_tensor(test_x, dtype=torch.float32, device=device)
    if metric == "cosine":
        train = torch.nn.functional.normalize(train, dim=1)
        test_all = torch.nn.functional.normalize(test_all, dim=1)
    labels = torch.as_tensor(train_cls.reshape(-1), dtype=torch.int64, device=device)
    preds: list[np.ndarray] = []
    for start in range(0, len(test_all), batch_size):
        test = test_all[start : start + batch_size]
        sim, nn_idx = _similarity(test, train, metric).topk(k, dim=1)
        if temperature is None:
            weights = torch.ones_like(sim)
        else:  # shifting by the row maximum leaves the vote unchanged and avoids underflow
            weights = torch.exp((sim - sim[:, :1]) / temperature)
        votes = torch.zeros(len(test), len(classes), dtype=torch.float64, device=device)
        votes.scatter_add_(1, labels[nn_idx], weights.to(torch.float64))
        preds.append(votes.argmax(dim=1).cpu().numpy())
    return classes[np.concatenate(preds)]


def knn_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    k: int = DEFAULT_K,
    temperature: float | None = DEFAULT_TEMPERATURE,
    metric: str = "cosine",
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Accuracy and macro-F1 of :func:`knn_classify` on the test set (like ``linear_probe``)."""
    pred = knn_classify(train_x, train_y, test_x, k, temperature, metric, device=device)
    return {
        "accuracy": float(accuracy_score(test_y, pred)),
        "macro_f1": float(f1_score(test_y, pred, average="macro", zero_division=0)),
        "train_samples": int(len(train_x)),
        "test_samples": int(len(test_x)),
    }
