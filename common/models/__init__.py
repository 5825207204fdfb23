"""Encoders (sensor windows and images) and the SSL heads; all free of running statistics."""

from common.models.encoder1d import CNN1DEncoder
from common.models.heads import PredictionHead, ProjectionHead
from common.models.registry import ENCODERS, build_encoder, default_arch_for
from common.models.resnet2d import ResNet2DEncoder

__all__ = [
    "ENCODERS",
    "CNN1DEncoder",
    "PredictionHead",
    "ProjectionHead",
    "ResNet2DEncoder",
    "build_encoder",
    "default_arch_for",
]
