"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (gzip IDX files, no download)."""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from common.data.dataset import Dataset
from common.data.errors import DataError
from common.data.validate import validate_dataset

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_MAGIC_IMAGES = 0x00000803  # IDX: unsigned byte data, 3 dims
_MAGIC_LABELS = 0x00000801  # IDX: unsigned byte data, 1 dim
_HINT = "install it with `sudo apt-get install dataset-fashion-mnist` or set FEDSSL_FMNIST_DIR"


def _read_gz(path: str) -> bytes:
    """Whole decompressed file; a missing, truncated or corrupt file becomes a DataError."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: Fashion-MNIST file not found; {_HINT}")
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({e})") from e


def _parse_idx(path: str, magic: int, ndim: int) -> np.ndarray:
    """uint8 array from an IDX file after checking its magic number and declared size."""
    data = _read_gz(path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        raise DataError(f"{path}: bad IDX magic number {got:#010x}, expected {magic:#010x}")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise DataError(
            f"{path}: IDX header declares shape {dims} ({expected} bytes) "
            f"but the file holds {len(data) - header} bytes (truncated or corrupt)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _load_split(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_file, lab_file = (os.path.join(root, f) for f in _FILES[split])
    images = _parse_idx(img_file, _MAGIC_IMAGES, 3)
    labels = _parse_idx(lab_file, _MAGIC_LABELS, 1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{img_file}: {images.shape[0]} images but {lab_file} has {labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= len(FMNIST_CLASS_NAMES):
        raise DataError(f"{lab_file}: label {int(labels.max())} outside 0..9")
    return images, labels


def load_fmnist(split: str = "train", root: str | None = None) -> Dataset:
    """(N, 1, 28, 28) float32 in [0, 1] for split "train" (60k), "test" (10k) or "all" (70k).

    `root` defaults to $FEDSSL_FMNIST_DIR, else FMNIST_DIR; "all" is train then test.
    """
    if split not in ("train", "test", "all"):
        raise DataError(f"fmnist: unknown split {split!r}; valid: train, test, all")
    root = root or os.environ.get("FEDSSL_FMNIST_DIR") or FMNIST_DIR
    if not os.path.isdir(root):
        raise DataError(f"{root}: Fashion-MNIST directory not found; {_HINT}")
    parts = [_load_split(root, s) for s in (("train", "test") if split == "all" else (split,))]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    ds = Dataset(
        x=np.ascontiguousarray(x),
        y=labels.astype(np.int64),
        client=None,
        num_classes=len(FMNIST_CLASS_NAMES),
        name="fmnist" if split == "train" else f"fmnist:{split}",
        class_names=list(FMNIST_CLASS_NAMES),
    )
    return validate_dataset(ds, f"fmnist ({root})")
