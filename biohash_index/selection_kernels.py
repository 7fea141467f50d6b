"""Numba kernels that find the candidates for a row's k largest units, shared by encoding
(the code's top k) and learning (the rule's top ranks).

A threshold from the row's mean and standard deviation, at the Gaussian quantile that about
2k of m values exceed, keeps a few more than k units; it is lowered until at least k pass,
so whatever the data the candidates hold every unit of the top k. One pass over the row
finds them 8 units at a time (``simd.compress8``), in increasing unit order, so that a later
scan over the candidates meets tied units lowest first.
"""
import functools
from statistics import NormalDist

import numpy as np
from numba import njit

from .simd import compress8


@functools.lru_cache(maxsize=64)
def threshold_z(k: int, m: int) -> np.float32:
    """z such that about 2k of m normal values exceed mean + z * sd: the first threshold."""
    return np.float32(NormalDist().inv_cdf(1 - min(0.5, max(2 * k, 16) / m)))


@njit(cache=True, nogil=True)
def top_candidates(row, k, z, cand, v):
    """The units that may be among the k largest of ``row``, at least k of them.

    row: float32 (m,), m >= k; z: ``threshold_z(k, m)``; cand: int32 scratch (m + 8,), out:
    the candidates in increasing order; v: float32 scratch (m,). Returns (row, c): c
    candidates, and the row they index, which is v, a copy of row with NaN as -inf, if
    fewer than k values of row are numbers.
    """
    mu, sd = _moments(row)
    t = np.float32(mu + z * sd)
    while True:
        c = _candidates(row, t, cand)
        if c >= k:
            return row, c
        if t == -np.inf:  # only NaN falls short of -inf: rank it below everything
            for j in range(row.shape[0]):
                v[j] = row[j] if row[j] == row[j] else -np.inf
            row = v
        lower = np.float32(t - 2 * sd)
        t = lower if lower < t else np.float32(-np.inf)  # -inf takes every unit


@njit(cache=True, nogil=True, fastmath=True)
def _moments(row):
    """The mean and standard deviation of row."""
    s = np.float32(0)
    s2 = np.float32(0)
    for j in range(row.shape[0]):
        x = row[j]
        s += x
        s2 += x * x
    mu = s / row.shape[0]
    return mu, np.sqrt(max(s2 / row.shape[0] - mu * mu, np.float32(0)))


@njit(cache=True, nogil=True)
def _candidates(row, t, cand):
    """Write the units j with row[j] >= t to cand in increasing order; return their count."""
    m = row.shape[0]
    full = m - m % 8
    c = 0
    for j in range(0, full, 8):
        c = compress8(row, j, t, cand, c)
    for j in range(full, m):
        cand[c] = j
        c += row[j] >= t
    return c
