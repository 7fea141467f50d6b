"""Numba kernels that turn hidden-unit inputs into packed sparse binary codes.

A code has one bit per hidden unit, set for the n_active units with the largest input (ties
go to the lower unit index); n_active is the hash length. Bits are packed little-endian like
faiss binary codes: unit j is bit (j % 8) of byte (j // 8).

Selection per row, exact whatever the data: a threshold from the row's mean and standard
deviation keeps about 2 n_active candidates (the Gaussian quantile; lowered until at least
n_active pass), then a quickselect on the candidates finds the n_active-th largest value, the
cut, and unless units tied with it must be split, the code is the bits of row >= cut. The two
passes over the m inputs compare 8 at a time (``_simd``); nothing in them branches on the data.
"""
import functools
from statistics import NormalDist

import numpy as np
from numba import njit

from ._simd import compress8, ge_mask8


def top_k_codes(tot: np.ndarray, n_active: int, code_size: int,
                bias: np.ndarray | None = None):
    """Pack the top n_active units of each row of ``tot - bias`` into binary codes.

    tot: float32 (n, m) hidden-unit inputs; bias: float32 (m,) subtracted on the fly
    (None: zeros). Returns uint8 (n, code_size) with exactly n_active bits set per row (a
    NaN input counts as the smallest value). Runs on the calling thread, without the GIL.
    """
    return _top_k_codes(tot, bias, n_active, code_size, threshold_z(n_active, tot.shape[1]))


@functools.lru_cache(maxsize=64)
def threshold_z(n_active: int, m: int) -> np.float32:
    """z such that about 2 n_active of m normal values exceed mean + z * sd: the first
    threshold."""
    return np.float32(NormalDist().inv_cdf(1 - min(0.5, 2 * n_active / m)))


@njit(cache=True, nogil=True)
def _top_k_codes(tot, bias, n_active, code_size, z):
    n, m = tot.shape
    codes = np.zeros((n, code_size), np.uint8)
    v = np.empty(m, tot.dtype)
    cand = np.empty(m + 8, np.int32)  # compress8 writes 8 slots past the count
    a = np.empty(m, tot.dtype)
    b = np.empty(m, tot.dtype)
    w = np.empty(m, tot.dtype)
    for i in range(n):
        select_row(tot[i], bias, n_active, z, v, cand, a, b, w, codes[i])
    return codes


@njit(cache=True, nogil=True)
def select_row(row, bias, n_active, z, v, cand, a, b, w, code):
    """Set the bits of the n_active largest ``row - bias`` in ``code`` (zeros on entry).

    v, a, b, w: float32 scratch (m,); cand: int32 scratch (m + 8,).
    """
    if bias is not None:
        for j in range(row.shape[0]):
            v[j] = row[j] - bias[j]
        row = v
    mu, sd = _moments(row)
    t = np.float32(mu + z * sd)
    while True:  # candidates: the units with row >= t, in unit order
        c = _candidates(row, t, cand)
        if c >= n_active:
            break
        if t == -np.inf:  # only NaN falls short of -inf: rank it below everything
            for j in range(row.shape[0]):
                v[j] = row[j] if row[j] == row[j] else -np.inf
            row = v
        lower = np.float32(t - 2 * sd)
        t = lower if lower < t else np.float32(-np.inf)  # -inf takes every unit
    for i in range(c):
        a[i] = w[i] = row[cand[i]]
    cut = _kth_largest(a, b, c, n_active - 1)
    n_gt = 0
    n_ge = 0
    for i in range(c):
        n_gt += w[i] > cut
        n_ge += w[i] >= cut
    if n_ge == n_active:  # no unit tied with the cut is left out: the code is row >= cut
        _pack_ge(row, cut, code)
        return
    n_eq = n_active - n_gt  # units equal to the cut that still fit, lowest units first
    for i in range(c):
        u = cand[i]
        eq = w[i] == cut
        take = (w[i] > cut) | (eq & (n_eq > 0))
        n_eq -= eq
        code[u >> 3] |= np.uint8(take << (u & 7))


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


@njit(cache=True, nogil=True)
def _pack_ge(row, t, code):
    """Set bit j of ``code`` (zeros on entry) where row[j] >= t."""
    m = row.shape[0]
    full = m - m % 8
    for j in range(0, full, 8):
        code[j >> 3] = np.uint8(ge_mask8(row, j, t))
    for j in range(full, m):
        code[j >> 3] |= np.uint8((row[j] >= t) << (j & 7))


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
def _kth_largest(a, b, n, r):
    """The value of rank r (0: the largest) among a[:n], n > r; clobbers a[:n] and b[:n].

    Quickselect with a median-of-3 pivot and a branch-free three-way split.
    """
    while True:
        x, y, w = a[0], a[n >> 1], a[n - 1]
        pivot = max(min(x, y), min(max(x, y), w))
        n_gt = 0
        n_lt = 0
        for i in range(n):  # > pivot to the front of a, < pivot to the front of b
            e = a[i]
            a[n_gt] = e
            n_gt += e > pivot
            b[n_lt] = e
            n_lt += e < pivot
        if r < n_gt:
            n = n_gt
        elif r < n - n_lt:
            return pivot
        else:
            r -= n - n_lt
            n = n_lt
            a, b = b, a
