"""Numba kernels of the Krotov-Hopfield plasticity rule.

The Python side (``model.py``) computes the hidden-unit inputs of a mini-batch with one
BLAS product, ``tot = X @ Wp.T``; these kernels rank the units and apply the update

    dW_mu = sum_b g_mu(b) * (x_b - tot_b[mu] * W_mu)

with g = 1 for the top unit, g = -delta for the unit at ``rank`` and 0 otherwise, scaled so
that the largest absolute change equals the learning rate. Only the rows of units that
received a non-zero g are touched, so a step costs O(batch * d), not O(m * d).
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def rank_units(tot, rank):
    """Top unit and unit at ``rank`` (1-based) for each row of ``tot``.

    tot: float32 (B, m). Returns two int64 arrays (B,). Ties go to the lower unit index.
    """
    B, m = tot.shape
    first = np.empty(B, np.int64)
    rth = np.empty(B, np.int64)
    best_v = np.empty(rank, tot.dtype)
    best_i = np.empty(rank, np.int64)
    for b in range(B):
        row = tot[b]
        n = 0  # insertion sort into a descending list of length <= rank
        for j in range(m):
            v = row[j]
            if n == rank and v <= best_v[n - 1]:
                continue
            pos = n if n < rank else rank - 1
            while pos > 0 and best_v[pos - 1] < v:
                if pos < rank:
                    best_v[pos] = best_v[pos - 1]
                    best_i[pos] = best_i[pos - 1]
                pos -= 1
            best_v[pos] = v
            best_i[pos] = j
            if n < rank:
                n += 1
        first[b] = best_i[0]
        rth[b] = best_i[rank - 1]
    return first, rth


@njit(cache=True, nogil=True)
def plasticity_step(W, X, tot, first, rth, delta, lr):
    """Apply one mini-batch update to W in place.

    W: float32 (m, d) weights; X: float32 (B, d) inputs; tot: float32 (B, m) unit inputs
    <W_mu, x_b>_p; first, rth: int64 (B,) from ``rank_units``. Returns the number of units
    that won at least one sample of the batch.
    """
    m, d = W.shape
    B = X.shape[0]
    ds = np.zeros((m, d), np.float32)
    coef = np.zeros(m, np.float64)
    touched = np.zeros(m, np.bool_)
    won = np.zeros(m, np.bool_)
    for b in range(B):
        a = first[b]
        touched[a] = True
        won[a] = True
        coef[a] += tot[b, a]
        for i in range(d):
            ds[a, i] += X[b, i]
        if delta != 0.0:
            r = rth[b]
            touched[r] = True
            coef[r] -= delta * tot[b, r]
            for i in range(d):
                ds[r, i] -= delta * X[b, i]
    nc = 0.0
    for mu in range(m):
        if touched[mu]:
            c = coef[mu]
            for i in range(d):
                v = ds[mu, i] - c * W[mu, i]
                ds[mu, i] = v
                if abs(v) > nc:
                    nc = abs(v)
    if nc < 1e-30:
        nc = 1e-30
    scale = lr / nc
    for mu in range(m):
        if touched[mu]:
            for i in range(d):
                W[mu, i] += scale * ds[mu, i]
    return won.sum()
