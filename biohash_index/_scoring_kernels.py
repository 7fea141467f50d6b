"""Numba kernel of asymmetric scoring: a query's real unit inputs against stored binary codes.

For a query whose unit inputs, less its own threshold (midway between its h-th and
(h+1)-th largest, h = hash_length), are c (m,), and a stored code b in {0, 1}^m, the
weighted Hamming distance is

    D = sum_j |c_j| [sign(c_j) != (2 b_j - 1)] / mean_j |c_j|:

each disagreeing bit costs how far the query's unit is from its threshold, in units of the
average distance. With all |c_j| equal it is the Hamming distance between the query's code
and b; otherwise confident bits count more than bits near the threshold.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True, parallel=True)
def weighted_distances(c, scale, codes, pos):
    """float32 (nq, K) distances of the stored codes at positions ``pos`` to each query.

    c: float32 (nq, m) query inputs less their thresholds; scale: float32 (nq,)
    mean_j |c_j|; codes: uint8 (n, code_size), unit j at bit j % 8 of byte j // 8; pos:
    int64 (nq, K) positions into codes, -1 for none (distance +inf). Each disagreeing bit
    adds |c_j|, so a code that agrees everywhere is at exactly 0. A query's costs are
    tabled per 4 units (16 entries each), so a code costs two look-ups per byte.
    """
    nq, K = pos.shape
    nbytes = (c.shape[1] + 7) // 8
    D = np.empty((nq, K), np.float32)
    for i in prange(nq):
        T = _nibble_costs(c[i], nbytes)
        for r in range(K):
            p = pos[i, r]
            if p < 0:
                D[i, r] = np.inf
                continue
            code = codes[p]
            s = np.float32(0)
            for b in range(nbytes):
                v = code[b]
                s += T[2 * b, v & 15] + T[2 * b + 1, v >> 4]
            D[i, r] = s / scale[i]
    return D


@njit(cache=True, nogil=True)
def _nibble_costs(row, nbytes):
    """float32 (2 nbytes, 16): T[q, v] = the cost of units 4q .. 4q+3 when their bits are v:
    |row_j| for each unit whose bit disagrees with the sign of row_j (units past m: 0)."""
    m = row.shape[0]
    T = np.zeros((2 * nbytes, 16), np.float32)
    for q in range(2 * nbytes):
        for v in range(16):
            s = np.float32(0)
            for t in range(4):
                j = 4 * q + t
                if j < m:
                    x = row[j]
                    s += max(-x, np.float32(0)) if (v >> t) & 1 else max(x, np.float32(0))
            T[q, v] = s
    return T
