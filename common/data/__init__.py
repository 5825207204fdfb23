"""Data sets (HAPT, digits, Fashion-MNIST, user .npz), validation and client partitioning."""

from common.data.dataset import Dataset
from common.data.digits import load_digits
from common.data.errors import DataError
from common.data.fmnist import FMNIST_DIR, load_fmnist
from common.data.hapt import HAPT_BASIC_CLASSES, HAPT_CLASS_NAMES, hapt_probe_split, load_hapt
from common.data.npz import load_npz
from common.data.partition import SCHEMES, natural_client_ids, partition
from common.data.registry import DATASETS, load_dataset
from common.data.validate import validate_dataset

__all__ = [
    "DATASETS",
    "FMNIST_DIR",
    "HAPT_BASIC_CLASSES",
    "HAPT_CLASS_NAMES",
    "SCHEMES",
    "DataError",
    "Dataset",
    "hapt_probe_split",
    "load_dataset",
    "load_digits",
    "load_fmnist",
    "load_hapt",
    "load_npz",
    "natural_client_ids",
    "partition",
    "validate_dataset",
]
