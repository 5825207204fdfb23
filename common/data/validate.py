"""Checks that turn malformed data into one clear DataError instead of a crash mid-training."""

from __future__ import annotations

import numpy as np

from common.data.dataset import Dataset
from common.data.errors import DataError


def _check_x(x: object, source: str) -> np.ndarray:
    """x must be a finite float array of rank 3 or 4; returns it as C-contiguous float32."""
    if not isinstance(x, np.ndarray):
        raise DataError(f"{source}: x must be a numpy array, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise DataError(
            f"{source}: x has wrong rank {x.ndim} (shape {x.shape}); expected 3 dims (N, C, L) "
            "for sensor windows or 4 dims (N, C, H, W) for images"
        )
    if x.dtype.kind != "f":
        raise DataError(
            f"{source}: x has dtype {x.dtype}, expected a float type (float32); "
            "scale integer data to floats first (e.g. pixels / 255)"
        )
    if x.shape[0] == 0:
        raise DataError(f"{source}: x is empty (0 samples)")
    if any(s == 0 for s in x.shape[1:]):
        raise DataError(f"{source}: x has an empty sample shape {x.shape[1:]}")
    with np.errstate(over="ignore"):  # overflow to Inf is reported below, with a hint
        out = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        n_nan = int(np.isnan(out).sum())
        n_inf = int(out.size - finite.sum()) - n_nan
        bad_rows = ~finite.reshape(out.shape[0], -1).all(axis=1)
        first = int(np.flatnonzero(bad_rows)[0])
        overflow = (
            " (values too large for float32 overflow to Inf)" if x.dtype != np.float32 else ""
        )
        raise DataError(
            f"{source}: x has {n_nan} NaN and {n_inf} Inf values in {int(bad_rows.sum())} "
            f"samples, first at sample index {first}{overflow}"
        )
    return out


def _check_ints(a: object, name: str, n: int, source: str) -> np.ndarray:
    """An integer vector of length n, returned as int64."""
    if not isinstance(a, np.ndarray):
        raise DataError(f"{source}: {name} must be a numpy array, got {type(a).__name__}")
    if a.ndim != 1:
        raise DataError(f"{source}: {name} must be 1-D, got shape {a.shape}")
    if a.shape[0] != n:
        raise DataError(
            f"{source}: {name} has length {a.shape[0]} but x has {n} samples; they must match"
        )
    if a.dtype.kind not in "iu":
        raise DataError(f"{source}: {name} must be integers, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def validate_dataset(ds: Dataset, source: str, min_samples: int = 1) -> Dataset:
    """Return `ds` with canonical dtypes (float32 x, int64 y/client) or raise DataError.

    `source` (a file path or data set name) starts every message so the user knows which input
    is wrong; `min_samples` lets callers demand e.g. one full batch.
    """
    x = _check_x(ds.x, source)
    n = int(x.shape[0])
    if n < min_samples:
        raise DataError(
            f"{source}: only {n} samples, fewer than the {min_samples} required "
            "(e.g. one batch); supply more data or lower the batch size"
        )
    if not isinstance(ds.num_classes, (int, np.integer)) or ds.num_classes < 0:
        raise DataError(f"{source}: num_classes must be a non-negative int, got {ds.num_classes!r}")
    num_classes = int(ds.num_classes)
    y = _check_ints(ds.y, "y", n, source)
    bad = (y < -1) | (y >= num_classes)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        allowed = f"-1 (unlabeled) or 0..{num_classes - 1}" if num_classes else "-1 (unlabeled)"
        raise DataError(
            f"{source}: {int(bad.sum())} labels out of range for {num_classes} classes (allowed: "
            f"{allowed}); first at sample index {first} with value {int(y[first])}"
        )
    client = None if ds.client is None else _check_ints(ds.client, "client", n, source)
    if ds.class_names is not None and len(ds.class_names) != num_classes:
        raise DataError(f"{source}: {len(ds.class_names)} class names for {num_classes} classes")
    return Dataset(
        x=x,
        y=y,
        client=client,
        num_classes=num_classes,
        name=ds.name,
        class_names=None if ds.class_names is None else list(ds.class_names),
    )
