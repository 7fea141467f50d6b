"""Numba kernels of ``BioHashIndexRefine``: exact squared L2 distances from queries to
stored vectors gathered by position, with no (nq, k', d) array of gathered vectors.

Each distance is the float32 sum of the float32 squares (x - q)^2 in numpy's order
(``_search_kernels._pairwise_sum``), so it equals ``np.sum((X - q) ** 2, axis=-1,
dtype=np.float32)`` bit for bit, what the refine index computed before.
"""
import numpy as np
from numba import njit

from ._search_kernels import _pairwise_sum


@njit(cache=True, nogil=True)
def l2_distances(xq, vectors, pos, missing):
    """float32 (nq, k'): squared L2 distances from float32 (nq, d) queries xq to the rows
    pos int64 (nq, k') of float32 (n, d) vectors, ``missing`` where pos is -1."""
    nq, kk = pos.shape
    d = xq.shape[1]
    D = np.empty((nq, kk), np.float32)
    sq = np.empty(d, np.float32)
    for i in range(nq):
        for j in range(kk):
            p = pos[i, j]
            if p < 0:
                D[i, j] = missing
                continue
            for c in range(d):
                t = vectors[p, c] - xq[i, c]
                sq[c] = t * t
            D[i, j] = _pairwise_sum(sq, d)
    return D
