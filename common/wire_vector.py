"""The shared weights on the wire: one flat float32 vector, not one array per tensor.

Flower stores every array of a message as objects of their own, and a device pulls
each object with a request of its own, through the server's proxy, signed and checked
(node authentication). A small encoder of 30-odd tensors thus cost about 80 requests
per training message; one vector costs a handful. Both ends know the shapes (they
follow from the run config and the input shape), so only the values travel, in the
shared keys' order. SecAgg+ masks and sums the vector exactly as it did the list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.errors import BadInputError


class WireShapeError(BadInputError, ValueError):
    """A flat weight vector does not hold the values the expected shapes need."""


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """One float32 vector of every array's values, in order."""
    if not arrays:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in arrays])


def unflatten(vector: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """The arrays of ``shapes`` whose values ``vector`` holds (copies, in its dtype)."""
    flat = np.asarray(vector).ravel()
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    if flat.size != sum(sizes):
        raise WireShapeError(
            f"weight vector has {flat.size} values; {len(sizes)} tensors of the model "
            f"need {sum(sizes)}"
        )
    ends = np.cumsum(sizes)
    return [
        flat[end - size : end].reshape(shape).copy()
        for shape, size, end in zip(shapes, sizes, ends, strict=True)
    ]


def single_vector(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The one vector a wire message must carry (a message of several arrays is an old
    or foreign sender's, and is refused by name)."""
    if len(arrays) != 1:
        raise WireShapeError(
            f"expected the weights as one flat vector, got {len(arrays)} arrays "
            "(a sender of another fedssl version?)"
        )
    return arrays[0]
