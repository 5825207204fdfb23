"""Raw-input features: the no-encoder baseline a device loop can run in place of a network.

Answers "what does the encoder buy a device?": the same head, projection, bandit and
drift detector run on features computed from the window itself. For sensor windows
``(C, L)`` the features are four per-channel statistics over time (mean, standard
deviation, minimum, maximum: 24 numbers for HAPT's 6 channels), the classical
hand-made HAR features. They beat the flattened window (768 numbers, whose PCA keeps
the phase of each oscillation rather than its shape), so the baseline is the strong
one. Images ``(C, H, W)`` are flattened (``mode="flat"``, also available for sensors).
"""

from __future__ import annotations

import numpy as np

from client.runtime.encoders import as_batch

MODES = ("stats", "flat")


class RawFeatures:
    """An ``Embedder`` (see ``client.runtime.encoders``) computing features with numpy."""

    def __init__(self, input_shape: tuple[int, ...], mode: str | None = None) -> None:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"raw features need samples (C, L) or (C, H, W), got {shape}")
        mode = mode or ("stats" if len(shape) == 2 else "flat")
        if mode not in MODES:
            raise ValueError(f"unknown raw feature mode {mode!r}; choose one of {MODES}")
        if mode == "stats" and len(shape) != 2:
            raise ValueError("per-channel statistics need sensor windows (C, L)")
        self.mode = mode
        self.kind = f"raw-{mode}"
        self.input_shape = shape
        self.out_dim = 4 * shape[0] if mode == "stats" else int(np.prod(shape))

    def embed(self, x: np.ndarray) -> np.ndarray:
        batch = as_batch(x, self.input_shape)
        if self.mode == "flat":
            return batch.reshape(len(batch), -1)
        feats = (batch.mean(axis=2), batch.std(axis=2), batch.min(axis=2), batch.max(axis=2))
        return np.concatenate(feats, axis=1).astype(np.float32, copy=False)
