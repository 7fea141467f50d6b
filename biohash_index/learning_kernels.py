"""Numba kernels of the Krotov-Hopfield plasticity rule.

The Python side (``model.py``) computes the hidden-unit inputs of a mini-batch with one
BLAS product, ``tot = X @ Wp.T``; these kernels rank the units and apply the update

    dW_mu = sum_b g_mu(b) * (x_b - tot_b[mu] * W_mu)

with g = 1 for the top unit, g = -delta for the unit at ``rank`` and 0 otherwise, scaled so
that the largest absolute change equals the learning rate. Only the rows of units that
received a non-zero g are touched, so a step costs O(batch * d) work and memory beyond
the O(m) scan of ``tot``, not O(m * d). ``learn_batch`` does a whole step in one call.
"""
import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def rank_units(tot, rank):
    """Top unit and unit at ``rank`` (1-based) for each row of ``tot``.

    tot: float32 (B, m), finite. Returns two int64 arrays (B,). Ties go to the lower unit
    index. One pass per row keeps a descending list of the ``rank`` largest entries; most
    entries cost one comparison with its last value.
    """
    B, m = tot.shape
    first = np.empty(B, np.int64)
    rth = np.empty(B, np.int64)
    best_v = np.empty(rank, tot.dtype)
    best_i = np.empty(rank, np.int64)
    for b in range(B):
        row = tot[b]
        best_v[:] = -np.inf
        thr = best_v[rank - 1]
        for j in range(m):
            v = row[j]
            if v <= thr:
                continue
            pos = rank - 1  # insertion: equal values stay ahead, so lower indices win ties
            while pos > 0 and best_v[pos - 1] < v:
                best_v[pos] = best_v[pos - 1]
                best_i[pos] = best_i[pos - 1]
                pos -= 1
            best_v[pos] = v
            best_i[pos] = j
            thr = best_v[rank - 1]
        first[b] = best_i[0]
        rth[b] = best_i[rank - 1]
    return first, rth


@njit(cache=True, nogil=True)
def plasticity_step(W, X, tot, first, rth, delta, lr):
    """Apply one mini-batch update to W in place; returns the units whose rows changed.

    W: float32 (m, d) weights; X: float32 (B, d) inputs; tot: float32 (B, m) unit inputs
    <W_mu, x_b>_p; first, rth: int64 (B,) from ``rank_units``. Returns int64 (u,) unit
    indices, u <= 2B, in order of first appearance. The changes are accumulated in a
    (2B, d) buffer, one row per touched unit, never in an (m, d) one.
    """
    m, d = W.shape
    B = X.shape[0]
    slot = np.full(m, -1, np.int64)   # unit -> row of ds, -1 if untouched
    units = np.empty(2 * B, np.int64)
    ds = np.zeros((2 * B, d), np.float32)
    coef = np.zeros(2 * B, np.float64)
    u = 0
    for b in range(B):
        a = first[b]
        if slot[a] < 0:
            slot[a] = u
            units[u] = a
            u += 1
        s = slot[a]
        coef[s] += tot[b, a]
        for i in range(d):
            ds[s, i] += X[b, i]
        if delta != 0.0:
            r = rth[b]
            if slot[r] < 0:
                slot[r] = u
                units[u] = r
                u += 1
            s = slot[r]
            coef[s] -= delta * tot[b, r]
            for i in range(d):
                ds[s, i] -= delta * X[b, i]
    nc = 0.0
    for s in range(u):
        c = coef[s]
        mu = units[s]
        for i in range(d):
            v = ds[s, i] - c * W[mu, i]
            ds[s, i] = v
            if abs(v) > nc:
                nc = abs(v)
    if nc < 1e-30:
        nc = 1e-30
    scale = lr / nc
    for s in range(u):
        mu = units[s]
        for i in range(d):
            W[mu, i] += scale * ds[s, i]
    return units[:u].copy()


@njit(cache=True, nogil=True)
def p_power(W, p, out):
    """out = sign(W) |W|^(p-1), the matrix whose product with x gives <W_mu, x>_p.

    W, out: float32 (u, d); p = 1.5 and 3 take a square root or a product instead of a power.
    """
    for mu in range(W.shape[0]):
        for i in range(W.shape[1]):
            w = W[mu, i]
            a = abs(w)
            if p == 1.5:
                a = np.sqrt(a)
            elif p == 3.0:
                a = a * a
            else:
                a = a ** (p - 1)
            out[mu, i] = a if w >= 0 else -a


@njit(cache=True, nogil=True)
def learn_batch(W, Wp, X, tot, p, rank, delta, lr, won):
    """One step of the rule on a mini-batch, in place: rank, update W, refresh Wp.

    W: float32 (m, d) weights; Wp: float32 (m, d), ``p_power(W)`` kept in step (pass W
    itself for p = 2); X: float32 (B, d); tot: float32 (B, m) = X @ Wp.T; won: bool (m,),
    the top units of the batch set to True.
    """
    first, rth = rank_units(tot, rank)
    rows = plasticity_step(W, X, tot, first, rth, delta, lr)
    for b in range(first.shape[0]):
        won[first[b]] = True
    if p != 2.0:
        for mu in rows:
            p_power(W[mu:mu + 1], p, Wp[mu:mu + 1])
