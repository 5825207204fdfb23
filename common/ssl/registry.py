"""SSL method registry (solo-learn style): one name per method class."""

from __future__ import annotations

from typing import Any

from torch import nn

from common.ssl.base import SSLMethod
from common.ssl.byol import BYOL
from common.ssl.fedx import FedX
from common.ssl.simclr import SimCLR
from common.ssl.simsiam import SimSiam

METHODS: dict[str, type[SSLMethod]] = {
    "simclr": SimCLR,
    "byol": BYOL,
    "simsiam": SimSiam,
    "fedx": FedX,
}


def build_method(name: str, encoder: nn.Module, **hparams: Any) -> SSLMethod:
    """Wrap `encoder` in method `name` with `hparams` (e.g. temperature=0.2, tau=0.996)."""
    try:
        cls = METHODS[name]
    except KeyError:
        raise ValueError(f"unknown SSL method {name!r}; choose one of {sorted(METHODS)}") from None
    return cls(encoder, **hparams)
