"""Self-supervised pretext methods behind one interface (SSLMethod) and one registry."""

from common.ssl.base import SSLMethod
from common.ssl.byol import BYOL
from common.ssl.losses import NegativeCosineLoss, NTXentLoss
from common.ssl.registry import METHODS, build_method
from common.ssl.simclr import SimCLR

__all__ = [
    "BYOL",
    "METHODS",
    "NTXentLoss",
    "NegativeCosineLoss",
    "SSLMethod",
    "SimCLR",
    "build_method",
]
