"""User-supplied data: an .npz archive with x, optional y and optional client arrays."""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from common.data.dataset import Dataset
from common.data.errors import DataError
from common.data.validate import validate_dataset

NPZ_KEYS = ("x", "y", "client")
_FORMAT = (
    "expected an .npz archive (numpy.savez) with key x (float32, (N, C, L) or (N, C, H, W)), "
    "optional y (int, -1 = unlabeled) and optional client (int ids)"
)


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    """The known keys of the archive, read without pickle (object arrays are refused)."""
    if not os.path.exists(path):
        raise DataError(f"{path}: file not found")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, {_FORMAT}")
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e.strerror})") from e
    if head == b"\x93NUMPY":
        raise DataError(f"{path}: holds a single .npy array, not an .npz archive; {_FORMAT}")
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path}: not an .npz (zip) archive: corrupt, truncated or wrong format; {_FORMAT}"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a valid .npz file ({e}); {_FORMAT}") from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not an .npz archive; {_FORMAT}")
    with archive:
        keys = list(archive.keys())
        if "x" not in keys:
            raise DataError(f"{path}: missing key 'x' (found keys {keys}); {_FORMAT}")
        out: dict[str, np.ndarray] = {}
        for key in NPZ_KEYS:
            if key not in keys:
                continue
            try:
                out[key] = archive[key]
            except ValueError as e:  # object dtype needs pickle, which is refused for safety
                raise DataError(
                    f"{path}: array {key!r} cannot be read without pickle (object dtype?): {e}"
                ) from e
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise DataError(f"{path}: array {key!r} is corrupt ({e})") from e
    return out


def load_npz(path: str) -> Dataset:
    """Load and validate a user .npz; num_classes = max(y) + 1 (0 when nothing is labeled)."""
    arrays = _read_arrays(path)
    x = arrays["x"]
    if x.dtype.kind != "f":
        raise DataError(
            f"{path}: x has dtype {x.dtype}, expected float (float32); "
            "scale integer data to floats first (e.g. pixels / 255)"
        )
    if x.ndim not in (3, 4):
        raise DataError(
            f"{path}: x has wrong rank {x.ndim} (shape {x.shape}); expected 3 dims "
            "(N, C, L) for sensor windows or 4 dims (N, C, H, W) for images"
        )
    n = int(x.shape[0])
    y = arrays.get("y")
    if y is None:
        y = np.full(n, -1, dtype=np.int64)
    elif y.dtype.kind not in "iu":
        raise DataError(f"{path}: y must be integer labels (-1 = unlabeled), got dtype {y.dtype}")
    num_classes = int(y.max()) + 1 if y.ndim == 1 and y.size and y.max() >= 0 else 0
    ds = Dataset(x=x, y=y, client=arrays.get("client"), num_classes=num_classes, name=f"npz:{path}")
    return validate_dataset(ds, path)
