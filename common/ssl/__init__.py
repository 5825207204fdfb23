"""Self-supervised pretext methods behind one interface (SSLMethod) and one registry."""

from common.ssl.base import SSLMethod
from common.ssl.byol import BYOL
from common.ssl.fedx import FedX
from common.ssl.losses import NegativeCosineLoss, NTXentLoss, RelationalLoss
from common.ssl.registry import METHODS, build_method
from common.ssl.simclr import SimCLR
from common.ssl.simsiam import SimSiam

__all__ = [
    "BYOL",
    "FedX",
    "METHODS",
    "NTXentLoss",
    "NegativeCosineLoss",
    "RelationalLoss",
    "SSLMethod",
    "SimCLR",
    "SimSiam",
    "build_method",
]
