"""Numba kernels that turn hidden-unit inputs into packed sparse binary codes.

A code has one bit per hidden unit, set for the k units with the largest input. Bits are
packed little-endian like faiss binary codes: unit j is bit (j % 8) of byte (j // 8).
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _top_k_row(row, k, idx, val):
    """Indices of the k largest entries of ``row`` into idx (unordered).

    Keeps a min-heap of size k in (val, idx); ties go to the lower unit index.
    """
    m = row.shape[0]
    for j in range(k):  # heapify the first k entries
        val[j] = row[j]
        idx[j] = j
    for start in range(k // 2 - 1, -1, -1):
        _sift_down(val, idx, start, k)
    for j in range(k, m):
        v = row[j]
        if v > val[0]:
            val[0] = v
            idx[0] = j
            _sift_down(val, idx, 0, k)


@njit(cache=True, nogil=True, inline="always")
def _less(val, idx, a, b):
    # heap order: smaller value first; on equal values the higher index is "smaller",
    # so that it is evicted first and lower indices win ties.
    return val[a] < val[b] or (val[a] == val[b] and idx[a] > idx[b])


@njit(cache=True, nogil=True)
def _sift_down(val, idx, pos, n):
    while True:
        left = 2 * pos + 1
        if left >= n:
            return
        child = left
        if left + 1 < n and _less(val, idx, left + 1, left):
            child = left + 1
        if _less(val, idx, child, pos):
            val[pos], val[child] = val[child], val[pos]
            idx[pos], idx[child] = idx[child], idx[pos]
            pos = child
        else:
            return


@njit(cache=True, nogil=True, parallel=True)
def top_k_codes(tot, k, code_size):
    """Pack the top-k units of each row of ``tot`` into binary codes.

    tot: float32 (n, m) hidden-unit inputs. Returns uint8 (n, code_size) with exactly k bits
    set per row.
    """
    n = tot.shape[0]
    codes = np.zeros((n, code_size), np.uint8)
    for i in prange(n):
        idx = np.empty(k, np.int64)
        val = np.empty(k, tot.dtype)
        _top_k_row(tot[i], k, idx, val)
        for j in range(k):
            u = idx[j]
            codes[i, u >> 3] |= np.uint8(1 << (u & 7))
    return codes
