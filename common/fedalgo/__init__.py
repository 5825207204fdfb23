"""Client-side federated algorithms (FedAvg, FedEMA, FedU) behind one registry.

They only change where a client starts training from and what it keeps, never what the
server computes, so all of them run under SecAgg+.
"""

from common.fedalgo.base import FedAlgorithm, divergence
from common.fedalgo.fedavg import FedAvg
from common.fedalgo.fedema import FedEMA
from common.fedalgo.fedu import FedU
from common.fedalgo.registry import FED_ALGORITHMS, build_fed_algorithm

__all__ = [
    "FED_ALGORITHMS",
    "FedAlgorithm",
    "FedAvg",
    "FedEMA",
    "FedU",
    "build_fed_algorithm",
    "divergence",
]
