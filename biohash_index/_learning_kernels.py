"""Numba kernels of the Krotov-Hopfield plasticity rule.

The Python side (``_model.py``) computes the hidden-unit inputs of a mini-batch with one
BLAS product, ``tot = X @ Wp.T``; these kernels rank the units and apply the update

    dW_mu = sum_b g_mu(b) * (x_b - tot_b[mu] * W_mu)

where g_mu(b) = g[r] if unit mu ranks r-th (0-based) for sample b, and 0 below the ranks
of g (the model sets g: Hebbian weights on the top units, -delta at ``rank``), scaled so
that the largest absolute change equals the learning rate. Only the rows of units that
received a non-zero g are touched, so a step costs O(batch * ranks * d) work and memory
beyond the O(m) scan of ``tot``, not O(m * d). ``learn_batch`` does a whole step in one
call.
"""
import numpy as np
from numba import njit


VECTOR_RANKS = 4  # up to this many ranks, rank by repeated vectorised max; beyond, one scan
INT32_MIN = np.int32(-2**31)


@njit(cache=True, nogil=True)
def rank_units(tot, n_ranks):
    """The ``n_ranks`` top units of each row of ``tot``, best first.

    tot: float32 (B, m), finite; a row is modified while it is ranked and then restored.
    Returns int64 (B, n_ranks). Ties go to the lower unit index.
    """
    B, m = tot.shape
    top = np.empty((B, n_ranks), np.int64)
    keys = np.empty(n_ranks, np.int32)
    best_v = np.empty(n_ranks, tot.dtype)
    for b in range(B):
        if n_ranks > VECTOR_RANKS or not _rank_by_max(tot[b].view(np.int32), top[b], keys):
            _rank_by_scan(tot[b], top[b], best_v)
    return top


@njit(cache=True, nogil=True)
def _rank_by_max(bits, best, keys):
    """Rank a row through the bits of its floats, rank by rank: the largest, its first index,
    then that entry is masked out. Positive floats order as their bits read as int32, and an
    int32 max vectorises where a float max does not (numba cannot tell LLVM "no NaN").

    bits: int32 (m,), a float32 row viewed as int32, restored on return; best: int64 (R,)
    out; keys: int32 (R,) scratch. Returns False, ``best`` partly written, as soon as a
    rank's value is not positive (its order is not that of its bits): the caller scans.
    """
    n = 0
    for r in range(best.shape[0]):
        key = _int_max(bits)
        if key <= 0:
            break
        best[r] = _first_index(bits, key)
        keys[r] = key
        bits[best[r]] = INT32_MIN
        n += 1
    for r in range(n):
        bits[best[r]] = keys[r]
    return n == best.shape[0]


@njit(cache=True, nogil=True)
def _int_max(bits):
    """The largest entry of int32 (m,) bits, m > 0."""
    mx = bits[0]
    for j in range(1, bits.shape[0]):
        mx = max(mx, bits[j])
    return mx


@njit(cache=True, nogil=True)
def _first_index(bits, key):
    """The lowest j with bits[j] == key (a branch-free min, which vectorises)."""
    m = np.int32(bits.shape[0])
    first = m
    for j in range(bits.shape[0]):
        first = min(first, np.int32(j) if bits[j] == key else m)
    return first


@njit(cache=True, nogil=True)
def _rank_by_scan(row, best_i, best_v):
    """Rank a float32 (m,) row into int64 (R,) best_i in one pass that keeps a descending list
    of the R largest entries (their values in float32 (R,) best_v, scratch); most entries
    cost one comparison with its last value."""
    n_ranks = best_i.shape[0]
    best_v[:] = -np.inf
    thr = best_v[n_ranks - 1]
    for j in range(row.shape[0]):
        v = row[j]
        if v <= thr:
            continue
        pos = n_ranks - 1  # insertion: equal values stay ahead, so lower indices win ties
        while pos > 0 and best_v[pos - 1] < v:
            best_v[pos] = best_v[pos - 1]
            best_i[pos] = best_i[pos - 1]
            pos -= 1
        best_v[pos] = v
        best_i[pos] = j
        thr = best_v[n_ranks - 1]


@njit(cache=True, nogil=True)
def plasticity_step(W, X, tot, top, g, lr):
    """Apply one mini-batch update to W in place; returns the units whose rows changed.

    W: float32 (m, d) weights; X: float32 (B, d) inputs; tot: float32 (B, m) unit inputs
    <W_mu, x_b>_p; top: int64 (B, R) from ``rank_units``; g: float64 (R,) the factor of the
    unit at each rank (zeros are skipped). Returns int64 (u,) unit indices in order of
    first appearance. The changes are accumulated in a (u, d) buffer, one row per touched
    unit, never in an (m, d) one.
    """
    m, d = W.shape
    B, R = top.shape
    slot = np.full(m, -1, np.int64)   # unit -> row of ds, -1 if untouched
    n_max = min(m, B * R)
    units = np.empty(n_max, np.int64)
    ds = np.empty((n_max, d), np.float32)
    coef = np.zeros(n_max, np.float64)
    u = 0
    for b in range(B):
        for r in range(R):
            f = g[r]
            if f == 0.0:
                continue
            a = top[b, r]
            if slot[a] < 0:
                slot[a] = u
                units[u] = a
                ds[u] = 0
                u += 1
            s = slot[a]
            coef[s] += f * tot[b, a]
            _axpy(ds[s], f, X[b])
    v = np.empty(d, np.float64)
    nc = np.int64(0)  # the bits of max |ds|, taken before ds is rounded to float32
    for s in range(u):
        _minus_ax(ds[s], coef[s], W[units[s]], v)
        nc = max(nc, _abs_max_bits(v))
    scale = lr / max(np.array([nc]).view(np.float64)[0], 1e-30)
    for s in range(u):
        _axpy(W[units[s]], scale, ds[s])
    return units[:u].copy()


@njit(cache=True, nogil=True)
def _axpy(y, a, x):
    """y += a * x for float32 (d,) y, x and a float64 a, computed in float64."""
    for i in range(y.shape[0]):
        y[i] += a * x[i]


@njit(cache=True, nogil=True)
def _minus_ax(y, a, x, v):
    """v = y - a * x in float64 (d,), then y = v rounded to float32; y, x float32 (d,)."""
    for i in range(y.shape[0]):
        v[i] = y[i] - a * x[i]
        y[i] = v[i]


@njit(cache=True, nogil=True)
def _abs_max_bits(v):
    """The bits of max |v| for float64 (d,) v, as int64: non-negative doubles order as their
    bits do, and an int64 max vectorises where a float max does not (numba cannot tell LLVM
    that there is no NaN)."""
    bits = v.view(np.int64)
    mx = np.int64(0)
    for i in range(bits.shape[0]):
        mx = max(mx, bits[i] & 0x7FFFFFFFFFFFFFFF)
    return mx


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
def learn_batch(W, Wp, X, tot, g, p, lr, won):
    """One step of the rule on a mini-batch, in place: rank, update W, refresh Wp.

    W: float32 (m, d) weights; Wp: float32 (m, d), ``p_power(W)`` kept in step (pass W
    itself for p = 2); X: float32 (B, d); tot: float32 (B, m) = X @ Wp.T; g: float64 (R,)
    the factor of each rank (``plasticity_step``); won: bool (m,), the top units of the
    batch set to True.
    """
    top = rank_units(tot, g.shape[0])
    rows = plasticity_step(W, X, tot, top, g, lr)
    for b in range(top.shape[0]):
        won[top[b, 0]] = True
    if p != 2.0:
        for mu in rows:
            p_power(W[mu:mu + 1], p, Wp[mu:mu + 1])
