"""Client-side federated algorithm registry (solo-learn style): one name per class."""

from __future__ import annotations

from typing import Any

from common.fedalgo.base import FedAlgorithm
from common.fedalgo.fedavg import FedAvg
from common.fedalgo.fedema import FedEMA
from common.fedalgo.fedu import FedU

FED_ALGORITHMS: dict[str, type[FedAlgorithm]] = {"fedavg": FedAvg, "fedema": FedEMA, "fedu": FedU}


def build_fed_algorithm(name: str, **hparams: Any) -> FedAlgorithm:
    """Algorithm ``name`` with ``hparams`` (fedema: tau=0.7; fedu: threshold=...)."""
    try:
        cls = FED_ALGORITHMS[name]
    except KeyError:
        raise ValueError(
            f"unknown federated algorithm {name!r}; choose one of {', '.join(FED_ALGORITHMS)}"
        ) from None
    return cls(**hparams)
