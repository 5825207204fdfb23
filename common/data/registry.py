"""Data set names used in configs and CLIs, mapped to their loaders."""

from __future__ import annotations

from collections.abc import Callable

from common.data.dataset import Dataset
from common.data.digits import load_digits
from common.data.errors import DataError
from common.data.fmnist import load_fmnist
from common.data.hapt import load_hapt
from common.data.npz import load_npz
from common.data.validate import validate_dataset

DATASETS: dict[str, Callable[..., Dataset]] = {
    "hapt": load_hapt,
    "digits": load_digits,
    # All 70k images: the official 60k/10k split is kept as the evaluation protocol.
    "fmnist": lambda: load_fmnist("all"),
}
NPZ_PREFIX = "npz:"


def load_dataset(spec: str, min_samples: int = 1) -> Dataset:
    """Load "hapt" | "digits" | "fmnist" | "npz:PATH" and validate it (at least min_samples)."""
    if not isinstance(spec, str):
        raise DataError(f"data set spec must be a string, got {type(spec).__name__}")
    spec = spec.strip()
    if spec.startswith(NPZ_PREFIX):
        path = spec[len(NPZ_PREFIX) :]
        if not path:
            raise DataError("data set spec 'npz:' needs a path, e.g. 'npz:/data/device0.npz'")
        return validate_dataset(load_npz(path), path, min_samples)
    loader = DATASETS.get(spec)
    if loader is None:
        valid = ", ".join([*DATASETS, NPZ_PREFIX + "PATH"])
        raise DataError(f"unknown data set {spec!r}; valid: {valid}")
    return validate_dataset(loader(), spec, min_samples)
