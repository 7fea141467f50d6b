"""The length byte (``length_byte=True``): one byte per stored code holding |x - mean|.

A code keeps the direction of x - mean, not its length; where lengths vary and matter
(image features, SIFT-like descriptors; not unit-norm text embeddings) one more byte lets
search estimate the L2 distance to the vector the code and its length decode to
(docs/learned-codes.md). The byte follows the code's bits, so it travels with the code
through every storage kind, removal, file and shard.

The byte holds one of LEVELS lengths, log-spaced between the least and greatest length of
the training rows (``levels``), written as a byte with exactly LENGTH_BITS bits set
(``LEVEL_BYTES``): queries have zeros there, so every stored code is exactly LENGTH_BITS
further from every query in Hamming distance than its bits are, and the Hamming order of
the shortlist is the bits' own.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

LENGTH_BITS = 4
# the bytes with LENGTH_BITS bits set, ascending: level i is written as LEVEL_BYTES[i]
LEVEL_BYTES = np.array(sorted(sum(1 << b for b in bits)
                              for bits in combinations(range(8), LENGTH_BITS)), np.uint8)
LEVELS = len(LEVEL_BYTES)   # 70
# the level of each byte value; bytes no code holds (damaged files) read as level 0
LEVEL_OF_BYTE = np.zeros(256, np.int64)
LEVEL_OF_BYTE[LEVEL_BYTES] = np.arange(LEVELS)


def are_levels(a) -> bool:
    """Whether a is float32 (LEVELS,), positive, finite and ascending (``levels``)."""
    return (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.shape == (LEVELS,)
            and bool(np.isfinite(a).all() and (a > 0).all() and (np.diff(a) >= 0).all()))


def lengths(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """float64 (n,): |x - mean| of float32 (n, d) rows (float64 sums: no overflow)."""
    xc = x.astype(np.float64) - mean
    return np.sqrt(np.einsum("ij,ij->i", xc, xc))


def levels(least: float, greatest: float) -> np.ndarray:
    """float32 (LEVELS,): lengths log-spaced from the least positive training length to the
    greatest (all the same where they are, or none is positive)."""
    if not 0 < least < greatest:
        least = greatest = greatest if greatest > 0 else 1.0
    return np.geomspace(least, greatest, LEVELS).astype(np.float32)


def length_bytes(lengths: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """uint8 (n,): the byte of the level nearest each float64 (n,) length in log scale
    (lengths outside the levels take the nearest end)."""
    logs = np.log(levels.astype(np.float64))
    mids = (logs[1:] + logs[:-1]) / 2
    with np.errstate(divide="ignore"):
        return LEVEL_BYTES[np.searchsorted(mids, np.log(lengths))]


def byte_lengths(b: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """float64 of b's shape: the length that each uint8 length byte in b holds."""
    return levels.astype(np.float64)[LEVEL_OF_BYTE[b]]
