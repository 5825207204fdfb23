"""The in-memory data set that every loader returns and every partitioner consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.data.errors import DataError


@dataclass(eq=False)  # arrays make field-wise == ambiguous; compare arrays explicitly instead
class Dataset:
    """Samples, labels and natural client ids of one data set, all aligned on axis 0.

    x is float32 and C-contiguous: (N, C, L) sensor windows or (N, C, H, W) images.
    y is int64 (N,), class index 0..num_classes-1, with -1 meaning unlabeled.
    client is int64 (N,) natural client ids (e.g. HAPT user 1..30) or None.
    Loaders run `validate_dataset` so these invariants hold for anything they return.
    """

    x: np.ndarray
    y: np.ndarray
    client: np.ndarray | None
    num_classes: int
    name: str
    class_names: list[str] | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, idx: np.ndarray) -> Dataset:
        """Rows `idx` in the order given (a copy), so partitions and splits own their data."""
        idx = np.asarray(idx)
        if idx.ndim != 1 or (idx.size > 0 and idx.dtype.kind not in "iu"):
            raise DataError(
                f"{self.name}: subset indices must be a 1-D integer array, "
                f"got shape {idx.shape} dtype {idx.dtype}"
            )
        idx = idx.astype(np.int64, copy=False)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise DataError(f"{self.name}: subset index out of range for {n} samples")
        return Dataset(
            x=np.ascontiguousarray(self.x[idx]),
            y=np.ascontiguousarray(self.y[idx]),
            client=None if self.client is None else np.ascontiguousarray(self.client[idx]),
            num_classes=self.num_classes,
            name=self.name,
            class_names=None if self.class_names is None else list(self.class_names),
        )

    @property
    def kind(self) -> str:
        """Return "sensor" for (N, C, L) windows, "image" for (N, C, H, W): picks the encoder."""
        return "sensor" if self.x.ndim == 3 else "image"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample, (C, L) or (C, H, W), which sizes the encoder."""
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def labeled(self) -> np.ndarray:
        """Boolean mask of samples that carry a label (y >= 0)."""
        return self.y >= 0
