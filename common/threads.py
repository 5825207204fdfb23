"""Torch's intra-op thread count, set in one place: a device gives its runtime one
thread (latency, and no fight with the deciding loop), a simulated client the CPUs Ray
gave it (``FEDSSL_TORCH_THREADS``)."""

from __future__ import annotations

import os

THREADS_ENV = "FEDSSL_TORCH_THREADS"


def set_torch_threads(threads: int | None) -> int:
    """Set torch's thread count (None or < 1: leave it); return the previous one."""
    import torch

    previous = int(torch.get_num_threads())
    if threads is not None and threads > 0 and previous != threads:
        torch.set_num_threads(int(threads))
    return previous


def threads_from_env() -> int | None:
    """``FEDSSL_TORCH_THREADS``, when the process that started this one set it."""
    value = int(os.environ.get(THREADS_ENV, "0") or 0)
    return value if value > 0 else None
