"""Batched, pure-torch data augmentations producing the two views of self-supervised learning."""

from common.augment.factory import AUGMENTS, augment_kind_for, make_augment
from common.augment.image import ImageAugment
from common.augment.sensor import SensorAugment

__all__ = ["AUGMENTS", "ImageAugment", "SensorAugment", "augment_kind_for", "make_augment"]
