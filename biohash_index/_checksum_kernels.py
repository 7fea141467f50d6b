"""XXH64, the 64-bit xxHash of Yann Collet (its specification, xxhash.h), as a numba kernel:
the checksum of saved files, at memory speed (sha256 runs at a few hundred MB/s).

A checksum detects damage (a flipped bit, a truncated or replaced file); it is not a
security boundary (a forged file with a recomputed checksum passes either hash).
"""
import numpy as np
from numba import njit

from ._simd import load_at

P1 = np.uint64(11400714785074694791)
P2 = np.uint64(14029467366897019727)
P3 = np.uint64(1609587929392839161)
P4 = np.uint64(9650029242287828579)
P5 = np.uint64(2870177450012600261)


@njit(cache=True, nogil=True, inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@njit(cache=True, nogil=True, inline="always")
def _round(acc, lane):
    return _rotl(acc + lane * P2, 31) * P1


@njit(cache=True, nogil=True, inline="always")
def _merge(h, v):
    return (h ^ _round(np.uint64(0), v)) * P1 + P4


@njit(cache=True, nogil=True)
def xxh64(data, seed=0):
    """The XXH64 hash (uint64) of the bytes of the uint8 (n,) array data."""
    n = data.shape[0]
    a = data.ctypes.data
    s = np.uint64(seed)
    p = 0
    if n >= 32:
        v1, v2, v3, v4 = s + P1 + P2, s + P2, s, s - P1
        while p + 32 <= n:
            v1 = _round(v1, load_at(a + p, np.uint64))
            v2 = _round(v2, load_at(a + p + 8, np.uint64))
            v3 = _round(v3, load_at(a + p + 16, np.uint64))
            v4 = _round(v4, load_at(a + p + 24, np.uint64))
            p += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(_merge(_merge(_merge(h, v1), v2), v3), v4)
    else:
        h = s + P5
    h += np.uint64(n)
    while p + 8 <= n:
        h = _rotl(h ^ _round(np.uint64(0), load_at(a + p, np.uint64)), 27) * P1 + P4
        p += 8
    if p + 4 <= n:
        h = _rotl(h ^ (np.uint64(load_at(a + p, np.uint32)) * P1), 23) * P2 + P3
        p += 4
    while p < n:
        h = _rotl(h ^ (np.uint64(load_at(a + p, np.uint8)) * P5), 11) * P1
        p += 1
    h ^= h >> np.uint64(33)
    h *= P2
    h ^= h >> np.uint64(29)
    h *= P3
    h ^= h >> np.uint64(32)
    return h
