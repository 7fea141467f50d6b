"""Numba kernels that turn hidden-unit inputs into packed sparse binary codes.

A code has one bit per hidden unit, set for the k units with the largest input. Bits are
packed little-endian like faiss binary codes: unit j is bit (j % 8) of byte (j // 8).
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _top_k_row(row, bias, k, idx, val):
    """Indices of the k largest entries of ``row - bias`` into idx (unordered).

    Keeps a min-heap of size k in (val, idx); ties go to the lower unit index. An entry
    costs one comparison with the heap's smallest value unless it enters the heap.
    """
    m = row.shape[0]
    for j in range(k):  # heapify the first k entries
        val[j] = row[j] - bias[j]
        idx[j] = j
    for start in range(k // 2 - 1, -1, -1):
        _sift_down(val, idx, start, k)
    low = val[0]
    for j in range(k, m):
        v = row[j] - bias[j]
        if v > low:
            val[0] = v
            idx[0] = j
            _sift_down(val, idx, 0, k)
            low = val[0]


@njit(cache=True, nogil=True, inline="always")
def _less(va, ia, vb, ib):
    # heap order: smaller value first; on equal values the higher index is "smaller",
    # so that it is evicted first and lower indices win ties.
    return va < vb or (va == vb and ia > ib)


@njit(cache=True, nogil=True)
def _sift_down(val, idx, pos, n):
    """Move the entry at ``pos`` down to its place in the min-heap of size n."""
    v, i = val[pos], idx[pos]
    while True:
        child = 2 * pos + 1
        if child >= n:
            break
        if child + 1 < n and _less(val[child + 1], idx[child + 1], val[child], idx[child]):
            child += 1
        if not _less(val[child], idx[child], v, i):
            break
        val[pos], idx[pos] = val[child], idx[child]
        pos = child
    val[pos], idx[pos] = v, i


@njit(cache=True, nogil=True, parallel=True)
def top_k_codes(tot, k, code_size, bias=None):
    """Pack the top-k units of each row of ``tot - bias`` into binary codes.

    tot: float32 (n, m) hidden-unit inputs, finite; bias: float32 (m,) subtracted on the
    fly (None: zeros). Returns uint8 (n, code_size) with exactly k bits set per row.
    """
    n, m = tot.shape
    if bias is None:
        b = np.zeros(m, tot.dtype)
    else:
        b = bias
    codes = np.zeros((n, code_size), np.uint8)
    for i in prange(n):
        idx = np.empty(k, np.int64)
        val = np.empty(k, tot.dtype)
        _top_k_row(tot[i], b, k, idx, val)
        for j in range(k):
            u = idx[j]
            codes[i, u >> 3] |= np.uint8(1 << (u & 7))
    return codes
