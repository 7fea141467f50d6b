"""Numba kernels of search: each query's shortlist over stored codes, its weighted
distances, and range matches.

Stored codes come as lists: list l holds sizes[l] codes of code_size bytes at address
code_addr[l] and their int64 ids at id_addr[l], in memory that faiss owns (a flat index's
arrays, or the inverted lists of an IVF index); the caller keeps it alive and unchanged while
a kernel runs. A query scans the lists it probes and keeps the K codes nearest by
(Hamming distance, id), a total order, so the shortlist does not depend on how the codes
are laid out. A code is found again by its location ``l << 32 | row``.

The scan reads codes and ids through ``_simd.load_at`` and passes only scalars to the
helpers it calls for every code: a helper that takes arrays costs reference counting per
call, many times the popcounts themselves.

Queries are encoded here too (``query_codes``), in one call: a code from each query's
hidden-unit inputs (as ``_encoding_kernels``), and with asymmetric scoring c and scale below,
computed in the order numpy computes them (``_pairwise_sum``), so they are the same bit for
bit.

Weighted distance (asymmetric scoring): for a query whose unit inputs, less its own
threshold (midway between its h-th and (h+1)-th largest), are c (m,), and a stored code b,

    W = sum_j |c_j| [sign(c_j) != (2 b_j - 1)] / mean_j |c_j|:

each disagreeing bit costs how far the query's unit is from its threshold, in units of the
average distance. With all |c_j| equal it is the Hamming distance between the query's code
and b; otherwise confident bits count more than bits near the threshold. A query's costs are
tabled per 4 units (16 entries each), so a code costs two look-ups per byte.
"""
import numpy as np
from numba import njit, prange

from ._encoding_kernels import select_row
from ._simd import load_at, popcount

ROW_BITS = 32  # a location is list << ROW_BITS | row
ROW_MASK = (1 << ROW_BITS) - 1
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


# ---------------------------------------------------------------------- Hamming distances
WORDS = 8  # query words held as scalars: codes of up to 68 bytes scan without a loop


@njit(cache=True, nogil=True)
def regular_code_size(cs):
    """Whether cs-byte codes take ``_hamming``'s loop-free path: whole 4-byte groups, at
    most WORDS words and 4 bytes (every fast faiss size: 4, 8, 16, 20, 32, 64)."""
    return cs % 4 == 0 and cs <= 8 * WORDS + 4


@njit(cache=True, nogil=True)
def _query_words(q):
    """uint64 (WORDS + 1,): the query code's first WORDS whole 8-byte words (0 past its
    end), and in the last slot the 4 bytes after its whole words, if it has 4 left over."""
    words = np.zeros(WORDS + 1, np.uint64)
    address = q.ctypes.data
    nw = q.shape[0] // 8
    for w in range(min(nw, WORDS)):
        words[w] = load_at(address + 8 * w, np.uint64)
    if q.shape[0] - 8 * nw >= 4:
        words[WORDS] = load_at(address + 8 * nw, np.uint32)
    return words


@njit(cache=True, nogil=True)
def _hamming_any(a, q, cs):
    """Hamming distance between the cs-byte codes at addresses a and q, any cs."""
    h = 0
    nw = cs // 8
    for w in range(nw):
        h += popcount(load_at(a + 8 * w, np.uint64) ^ load_at(q + 8 * w, np.uint64))
    for b in range(8 * nw, cs):
        h += popcount(np.uint64(load_at(a + b, np.uint8) ^ load_at(q + b, np.uint8)))
    return h


@njit(cache=True, nogil=True, inline="always")
def _hamming(a, q, w, cs, regular):
    """Hamming distance between the cs-byte code at address a and the query code at address
    q, whose ``_query_words`` are the tuple w.

    A regular code size (``regular_code_size``) costs one load and one popcount per 8 bytes
    and no loop: the branches on cs go the same way for every code, so LLVM takes them out
    of the scan. Other sizes take ``_hamming_any``.
    """
    if not regular:
        return _hamming_any(a, q, cs)
    h = 0
    if cs >= 8:
        h += popcount(load_at(a, np.uint64) ^ w[0])
    if cs >= 16:
        h += popcount(load_at(a + 8, np.uint64) ^ w[1])
    if cs >= 24:
        h += popcount(load_at(a + 16, np.uint64) ^ w[2])
    if cs >= 32:
        h += popcount(load_at(a + 24, np.uint64) ^ w[3])
    if cs >= 40:
        h += popcount(load_at(a + 32, np.uint64) ^ w[4])
    if cs >= 48:
        h += popcount(load_at(a + 40, np.uint64) ^ w[5])
    if cs >= 56:
        h += popcount(load_at(a + 48, np.uint64) ^ w[6])
    if cs >= 64:
        h += popcount(load_at(a + 56, np.uint64) ^ w[7])
    if cs % 8 == 4:
        h += popcount(np.uint64(load_at(a + cs - 4, np.uint32)) ^ w[WORDS])
    return h


@njit(cache=True, nogil=True, inline="always")
def _word_tuple(q):
    """``_query_words`` of q as a tuple of scalars, for ``_hamming``."""
    w = _query_words(q)
    return (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8])


# ---------------------------------------------------------------------- shortlists
@njit(cache=True, nogil=True, inline="always")
def _before(h1, i1, h2, i2):
    """Whether (h1, i1) comes before (h2, i2) in (distance, id) order."""
    return h1 < h2 or (h1 == h2 and i1 < i2)


@njit(cache=True, nogil=True)
def _sift_down(H, I, L, start, count):
    """Restore the max-heap order (by (H, I)) of the count entries below ``start``."""
    r = start
    while True:
        c = 2 * r + 1
        if c >= count:
            return
        if c + 1 < count and _before(H[c], I[c], H[c + 1], I[c + 1]):
            c += 1
        if not _before(H[r], I[r], H[c], I[c]):
            return
        H[r], H[c] = H[c], H[r]
        I[r], I[c] = I[c], I[r]
        L[r], L[c] = L[c], L[r]
        r = c


@njit(cache=True, nogil=True)
def _push(H, I, L, count, h, i, loc):
    """Add (h, i, loc) to the max-heap H, I, L of count entries (room for one more);
    returns the new count."""
    r = count
    H[r], I[r], L[r] = h, i, loc
    while r > 0:
        p = (r - 1) // 2
        if not _before(H[p], I[p], H[r], I[r]):
            break
        H[r], H[p] = H[p], H[r]
        I[r], I[p] = I[p], I[r]
        L[r], L[p] = L[p], L[r]
        r = p
    return count + 1


@njit(cache=True, nogil=True)
def _keeps(i, allowed, filtered, I, count, dedupe):
    """Whether id i may enter a shortlist holding I[:count]: allowed (when ``filtered``,
    allowed is sorted) and, when ids may repeat across lists (``dedupe``), not there yet."""
    if filtered:
        j = np.searchsorted(allowed, i)
        if j == allowed.shape[0] or allowed[j] != i:
            return False
    if dedupe:
        for r in range(count):
            if I[r] == i:
                return False
    return True


@njit(cache=True, nogil=True)
def _shortlist_one(q, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe,
                   max_codes, H, I, L):
    """Fill H, I, L (K,) with the query's shortlist in (distance, id) order; returns its
    length (< K when fewer codes are scanned). See ``shortlists``."""
    K = H.shape[0]
    cs = q.shape[0]
    qa = q.ctypes.data
    w = _word_tuple(q)
    regular = regular_code_size(cs)
    count = 0
    scanned = 0
    th, ti = INT64_MAX, np.int64(INT64_MAX)   # the heap's top once it is full: the bar
    for lst in probes:
        if lst < 0:
            continue
        n = sizes[lst]
        ca, ia = code_addr[lst], id_addr[lst]
        r = -1
        while True:
            r, h, i = _next_before(ca, ia, qa, w, cs, regular, r + 1, n, th, ti)
            if r == n:
                break
            if (filtered or dedupe) and not _keeps(i, allowed, filtered, I, count, dedupe):
                continue
            loc = (np.int64(lst) << ROW_BITS) | r
            if count < K:
                count = _push(H, I, L, count, h, i, loc)
            else:
                H[0], I[0], L[0] = h, i, loc
                _sift_down(H, I, L, 0, count)
            if count == K:
                th, ti = H[0], I[0]
        scanned += n
        if max_codes > 0 and scanned >= max_codes:
            break
    for end in range(count - 1, 0, -1):   # heap sort: ascending (distance, id)
        H[0], H[end] = H[end], H[0]
        I[0], I[end] = I[end], I[0]
        L[0], L[end] = L[end], L[0]
        _sift_down(H, I, L, 0, end)
    return count


@njit(cache=True, nogil=True)
def _bounded_one(q, probes, code_addr, id_addr, sizes, allowed, filtered, max_codes, hs, ids,
                 locs, hist, H, I, L):
    """``_shortlist_one`` for lists whose ids are distinct (no dedupe), with a buffer instead
    of a heap: a code enters the buffer hs, ids, locs (cap >= 2 K entries) when it comes
    before the K-th best (distance, id) kept so far, and a full buffer is cut back to its K
    best (``_cut``). Most codes cost a popcount and one compare that is not taken;
    hist: int64 scratch (8 code_size + 2,)."""
    K = H.shape[0]
    cap = hs.shape[0]
    cs = q.shape[0]
    qa = q.ctypes.data
    w = _word_tuple(q)
    regular = regular_code_size(cs)
    count = 0
    scanned = 0
    th, ti = 8 * cs + 1, np.int64(INT64_MAX)   # the K-th best kept at the last cut: the bar
    for lst in probes:
        if lst < 0:
            continue
        n = sizes[lst]
        ca, ia = code_addr[lst], id_addr[lst]
        r = -1
        while True:
            r, h, i = _next_before(ca, ia, qa, w, cs, regular, r + 1, n, th, ti)
            if r == n:
                break
            if filtered and not _keeps(i, allowed, filtered, I, 0, False):
                continue
            hs[count], ids[count], locs[count] = h, i, (np.int64(lst) << ROW_BITS) | r
            count += 1
            if count == cap or (count == K and ti == INT64_MAX):   # the bar: the K-th best
                count, th, ti = _cut(hs, ids, locs, count, K, hist)
        scanned += n
        if max_codes > 0 and scanned >= max_codes:
            break
    return _sorted_best(hs, ids, locs, count, K, hist, H, I, L)


@njit(cache=True, nogil=True, inline="always")
def _next_before(ca, ia, qa, w, cs, regular, r, n, th, ti):
    """(row, distance, id) of the first of rows r .. n - 1 of the codes at ca (ids at ia)
    that comes before (th, ti) in (Hamming distance to the query, id) order, or (n, 0, 0).

    Codes of 8, 16, 32, 48 or 64 bytes scan in ``_next_before_words``, compiled for their
    number of 8-byte words (each size adds to the kernels' first compilation, so only these);
    other sizes in the loop below. Inlined where it is called: it returns at every code
    that passes, hundreds per query while the bar is high."""
    if regular and cs % 8 == 0:   # the common sizes: 8, 16, 32, 48 and 64 bytes
        nw = cs // 8
        if nw == 1:
            return _next_before_words(ca, ia, (w[0],), r, n, th, ti)
        if nw == 2:
            return _next_before_words(ca, ia, (w[0], w[1]), r, n, th, ti)
        if nw == 4:
            return _next_before_words(ca, ia, (w[0], w[1], w[2], w[3]), r, n, th, ti)
        if nw == 6:
            return _next_before_words(ca, ia, (w[0], w[1], w[2], w[3], w[4], w[5]), r, n,
                                      th, ti)
        if nw == 8:
            return _next_before_words(ca, ia, (w[0], w[1], w[2], w[3], w[4], w[5], w[6],
                                               w[7]), r, n, th, ti)
    while r < n:
        h = _hamming(ca + r * cs, qa, w, cs, regular)
        if _before_bar(h, th, ia, r, ti):
            return r, h, load_at(ia + 8 * r, np.int64)
        r += 1
    return n, 0, np.int64(0)


@njit(cache=True, nogil=True, inline="always")
def _before_bar(h, th, ia, r, ti):
    """Whether the code of row r, at Hamming distance h, comes before the bar (th, ti) in
    (distance, id) order; its id (at ia) is read only on a tie."""
    return h < th or (h == th and load_at(ia + 8 * r, np.int64) < ti)


UNROLL = 2  # codes per step of ``_next_before_words``: one branch on the least distance
# (4 scan as fast at 100k codes, but cost more while many codes pass the bar)


@njit(cache=True, nogil=True, inline="always")
def _words_distance(a, w):
    """Hamming distance between the code of len(w) 8-byte words at address a and the
    query's words w."""
    h = 0
    for j in range(len(w)):
        h += popcount(load_at(a + 8 * j, np.uint64) ^ w[j])
    return h


@njit(cache=True, nogil=True)
def _next_before_words(ca, ia, w, r, n, th, ti):
    """``_next_before`` for codes of len(w) 8-byte words, w the query's (a tuple, whose
    length numba compiles in: the popcounts unroll and the loop holds no branch on the code
    size; 2.5 times faster per 16-byte code than the general loop).

    Steps UNROLL codes at a time and branches once, on their least distance; only a step
    with one at or under the bar th is looked at code by code (at 100k codes, 0.8-0.9
    against 1.2 ns per 16-byte code checked one by one, 0.5-0.6 against 0.8 per 8-byte
    code)."""
    cs = 8 * len(w)
    while r < n:
        if r + UNROLL <= n:
            a = ca + r * cs
            least = _words_distance(a, w)
            for u in range(1, UNROLL):
                least = min(least, _words_distance(a + u * cs, w))
            if least > th:
                r += UNROLL
                continue
        end = min(r + UNROLL, n)
        while r < end:
            h = _words_distance(ca + r * cs, w)
            if _before_bar(h, th, ia, r, ti):
                return r, h, load_at(ia + 8 * r, np.int64)
            r += 1
    return n, 0, np.int64(0)


@njit(cache=True, nogil=True)
def _cut(hs, ids, locs, count, K, hist):
    """Keep the min(K, count) best entries of the buffer by (distance, id), distinct ids,
    at its front, in any order; returns (how many, the distance and id of the worst kept).
    Leaves hist[t] = the number kept at distance < t."""
    hist[:] = 0
    for j in range(count):
        hist[hs[j] + 1] += 1
    for t in range(1, hist.shape[0]):
        hist[t] += hist[t - 1]
    keep = min(K, count)
    t = 0
    while hist[t + 1] < keep:           # t: the distance of the keep-th best
        t += 1
    ti = INT64_MIN
    if hist[t + 1] > keep:              # more ties at t than fit: their smallest ids
        tied = np.empty(hist[t + 1] - hist[t], np.int64)
        c = 0
        for j in range(count):
            if hs[j] == t:
                tied[c] = ids[j]
                c += 1
        tied.sort()
        ti = tied[keep - hist[t] - 1]
    else:
        for j in range(count):
            if hs[j] == t and ids[j] > ti:
                ti = ids[j]
    c = 0
    for j in range(count):
        if hs[j] < t or (hs[j] == t and ids[j] <= ti):
            hs[c], ids[c], locs[c] = hs[j], ids[j], locs[j]
            c += 1
    return c, t, ti


@njit(cache=True, nogil=True)
def _sorted_best(hs, ids, locs, count, K, hist, H, I, L):
    """The min(K, count) best entries of the buffer into H, I, L in (distance, id) order;
    returns how many."""
    count, _, _ = _cut(hs, ids, locs, count, K, hist)
    ascending = True   # the buffer keeps scan order: ids stored in order are in order
    for j in range(1, count):
        ascending &= ids[j - 1] < ids[j]
    order = np.arange(count) if ascending else np.argsort(ids[:count], kind="mergesort")
    for j in order:    # by distance (a counting sort), then id
        at = hist[hs[j]]
        hist[hs[j]] += 1
        H[at], I[at], L[at] = hs[j], ids[j], locs[j]
    return count


@njit(cache=True, nogil=True)
def _shortlist_row(q, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe, max_codes,
                   H, I, L, hs, ids, locs, hist):
    """One query's shortlist into H, I, L (K,), padded past the codes found."""
    if dedupe:
        c = _shortlist_one(q, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe,
                           max_codes, H, I, L)
    else:
        c = _bounded_one(q, probes, code_addr, id_addr, sizes, allowed, filtered, max_codes,
                         hs, ids, locs, hist, H, I, L)
    H[c:] = np.iinfo(np.int32).max
    I[c:] = -1
    L[c:] = -1


@njit(cache=True, nogil=True)
def _scratch(K, code_size):
    """The buffers of ``_bounded_one``: hs int32, ids int64, locs int64 (2 K + 64,) and
    hist int64 (8 code_size + 2,)."""
    cap = 2 * K + 64
    return (np.empty(cap, np.int32), np.empty(cap, np.int64), np.empty(cap, np.int64),
            np.empty(8 * code_size + 2, np.int64))


@njit(cache=True, nogil=True)
def _shortlist_rows(qcodes, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe,
                    max_codes, H, I, L, lo, hi):
    hs, ids, locs, hist = _scratch(H.shape[1], qcodes.shape[1])
    for i in range(lo, hi):
        _shortlist_row(qcodes[i], probes[i], code_addr, id_addr, sizes, allowed, filtered,
                       dedupe, max_codes, H[i], I[i], L[i], hs, ids, locs, hist)


@njit(cache=True, nogil=True)
def shortlists(qcodes, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe,
               max_codes, K):
    """Each query's K nearest codes among the lists it probes, in (Hamming distance, id) order.

    qcodes: C-contiguous uint8 (nq, code_size); probes: int64 (nq, P) list numbers (-1:
    none), scanned in order; code_addr, id_addr, sizes: int64 (n_lists,), the lists;
    allowed: sorted int64 ids, the only ones kept if ``filtered``; dedupe: whether an id may
    be in several lists (then kept once); max_codes: stop after the list that reaches this
    many scanned codes (0: no limit). Returns H int32, I int64 ids and L int64 locations,
    each (nq, K); past the codes found, H = int32 max and I = L = -1.
    """
    nq = qcodes.shape[0]
    H = np.empty((nq, K), np.int32)
    I = np.empty((nq, K), np.int64)
    L = np.empty((nq, K), np.int64)
    _shortlist_rows(qcodes, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe,
                    max_codes, H, I, L, 0, nq)
    return H, I, L


@njit(cache=True, nogil=True, parallel=True)
def shortlists_parallel(qcodes, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe,
                        max_codes, K, n_chunks):
    """``shortlists`` with the queries split into n_chunks chunks, one per thread."""
    nq = qcodes.shape[0]
    H = np.empty((nq, K), np.int32)
    I = np.empty((nq, K), np.int64)
    L = np.empty((nq, K), np.int64)
    n_chunks = max(1, min(nq, n_chunks))
    for ch in prange(n_chunks):
        _shortlist_rows(qcodes, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe,
                        max_codes, H, I, L, ch * nq // n_chunks, (ch + 1) * nq // n_chunks)
    return H, I, L


# ---------------------------------------------------------------------- weighted distances
@njit(cache=True, nogil=True)
def _nibble_costs(row, nbytes):
    """float32 (2 nbytes, 16): T[q, v] = the cost of units 4q .. 4q+3 when their bits are v:
    |row_j| for each unit whose bit disagrees with the sign of row_j (units past m: 0).

    Built unit by unit: after unit t, entry v < 2^(t+1) holds the cost of bits v of units
    4q .. 4q+t, summed from unit 4q up (30 additions for 16 entries, each entry's sum in
    the same order as adding its four costs one by one)."""
    m = row.shape[0]
    T = np.zeros((2 * nbytes, 16), np.float32)
    for q in range(2 * nbytes):
        size = 1
        for t in range(4):
            j = 4 * q + t
            x = row[j] if j < m else np.float32(0)
            off, on = max(x, np.float32(0)), max(-x, np.float32(0))
            for v in range(size):
                T[q, v + size] = T[q, v] + on
                T[q, v] = T[q, v] + off
            size *= 2
    return T


@njit(cache=True, nogil=True)
def _weighted_row(c, scale, code_addr, code_size, L, W):
    """Weighted distances W (K,) of one query (c (m,), scale) to the codes at L (K,)."""
    nbytes = (c.shape[0] + 7) // 8
    T = _nibble_costs(c, nbytes)
    for r in range(L.shape[0]):
        loc = L[r]
        if loc < 0:
            W[r] = np.inf
            continue
        a = code_addr[loc >> ROW_BITS] + (loc & ROW_MASK) * code_size
        s = np.float32(0)
        for b in range(nbytes):
            v = load_at(a + b, np.uint8)
            s += T[2 * b, v & 15] + T[2 * b + 1, v >> 4]
        W[r] = s / scale


@njit(cache=True, nogil=True)
def _weighted_rows(c, scale, code_addr, code_size, L, W, lo, hi):
    for i in range(lo, hi):
        _weighted_row(c[i], scale[i], code_addr, code_size, L[i], W[i])


@njit(cache=True, nogil=True)
def weighted_distances(c, scale, code_addr, code_size, L):
    """float32 (nq, K) weighted distances of the codes at locations L (int64 (nq, K), -1:
    none, distance +inf) to each query.

    c: float32 (nq, m) query inputs less their thresholds; scale: float32 (nq,)
    mean_j |c_j|; code_addr: the lists' code addresses (as ``shortlists``); code_size: bytes
    per stored code, unit j at bit j % 8 of byte j // 8. A code that agrees everywhere is
    at 0.
    """
    W = np.empty(L.shape, np.float32)
    _weighted_rows(c, scale, code_addr, code_size, L, W, 0, L.shape[0])
    return W


@njit(cache=True, nogil=True, parallel=True)
def weighted_distances_parallel(c, scale, code_addr, code_size, L, n_chunks):
    """``weighted_distances`` with the queries split into n_chunks chunks, one per thread."""
    W = np.empty(L.shape, np.float32)
    nq = L.shape[0]
    n_chunks = max(1, min(nq, n_chunks))
    for ch in prange(n_chunks):
        _weighted_rows(c, scale, code_addr, code_size, L, W, ch * nq // n_chunks,
                       (ch + 1) * nq // n_chunks)
    return W


@njit(cache=True, nogil=True)
def bytes_at(code_addr, code_size, L, offset):
    """uint8 (nq, K): byte ``offset`` of the code at each location of L (int64 (nq, K); 0
    where L is -1); code_addr and code_size as ``weighted_distances``."""
    out = np.zeros(L.shape, np.uint8)
    for i in range(L.shape[0]):
        for j in range(L.shape[1]):
            loc = L[i, j]
            if loc >= 0:
                out[i, j] = load_at(code_addr[loc >> ROW_BITS] + (loc & ROW_MASK) * code_size
                                    + offset, np.uint8)
    return out


# ---------------------------------------------------------------------- whole searches
MISSING_DISTANCE = np.float32(2**31 - 1)  # D where fewer than k results, as faiss's int32 max


INSERTION_K = 64   # results kept by insertion into a sorted list up to this k, else sorted


@njit(cache=True, nogil=True)
def _insert_best(I, W, D, Ik):
    """The k = len(D) best of the candidates I, W by (W, id), missing ids (-1) last, into
    D and Ik in that order, by insertion: the shortlist comes nearly in W order, so most
    candidates are refused by one compare with the k-th."""
    k = D.shape[0]
    n = 0
    for r in range(I.shape[0]):
        w, i = W[r], I[r]
        key = INT64_MAX if i == -1 else i
        if n == k and not _before_w(w, key, D[k - 1], Ik[k - 1]):
            continue
        j = min(n, k - 1)
        while j > 0 and _before_w(w, key, D[j - 1], Ik[j - 1]):
            D[j], Ik[j] = D[j - 1], Ik[j - 1]
            j -= 1
        D[j], Ik[j] = w, i
        n = min(n + 1, k)


@njit(cache=True, nogil=True, inline="always")
def _before_w(w1, key1, w2, i2):
    """Whether (w1, key1) comes before (w2, the key of id i2), -1 keyed last."""
    key2 = INT64_MAX if i2 == -1 else i2
    return w1 < w2 or (w1 == w2 and key1 < key2)


@njit(cache=True, nogil=True)
def _best_row(H, I, W, asymmetric, D, Ik):
    """The k = len(D) best of one query's shortlist H, I (and weighted distances W when
    ``asymmetric``) into D float32 and Ik int64 (k,): the first k, or the k best by (W, id),
    missing results (I = -1) last, at D = MISSING_DISTANCE."""
    k = D.shape[0]
    if asymmetric and k <= INSERTION_K:
        _insert_best(I, W, D, Ik)
    elif asymmetric:
        key = np.where(I == -1, INT64_MAX, I)
        by_id = np.argsort(key, kind="mergesort")
        order = by_id[np.argsort(W[by_id], kind="mergesort")]
        for j in range(k):
            Ik[j] = I[order[j]]
            D[j] = W[order[j]]
    else:
        for j in range(k):
            Ik[j] = I[j]
            D[j] = np.float32(H[j])
    for j in range(k):
        if Ik[j] == -1:
            D[j] = MISSING_DISTANCE


@njit(cache=True, nogil=True)
def _search_rows(qcodes, c, scale, probes, code_addr, id_addr, sizes, allowed, filtered,
                 dedupe, max_codes, K, D, I, lo, hi):
    code_size = qcodes.shape[1]
    asymmetric = c.shape[0] > 0
    hs, ids, locs, hist = _scratch(K, code_size)
    H1 = np.empty(K, np.int32)
    I1 = np.empty(K, np.int64)
    L1 = np.empty(K, np.int64)
    W1 = np.empty(K, np.float32)
    for i in range(lo, hi):
        _shortlist_row(qcodes[i], probes[i], code_addr, id_addr, sizes, allowed, filtered,
                       dedupe, max_codes, H1, I1, L1, hs, ids, locs, hist)
        if asymmetric:
            _weighted_row(c[i], scale[i], code_addr, code_size, L1, W1)
        _best_row(H1, I1, W1, asymmetric, D[i], I[i])


@njit(cache=True, nogil=True)
def searches(qcodes, c, scale, probes, code_addr, id_addr, sizes, allowed, filtered, dedupe,
             max_codes, K, D, I):
    """The whole search of each query in one pass: its shortlist of K (``shortlists``),
    then, with asymmetric scoring (c float32 (nq, m) and scale (nq,) as
    ``weighted_distances`` takes them; c of 0 rows: Hamming scoring), its weighted
    distances, and the k best (``_best_row``) written to D float32 and I int64 (nq, k)."""
    _search_rows(qcodes, c, scale, probes, code_addr, id_addr, sizes, allowed, filtered,
                 dedupe, max_codes, K, D, I, 0, qcodes.shape[0])


@njit(cache=True, nogil=True, parallel=True)
def searches_parallel(qcodes, c, scale, probes, code_addr, id_addr, sizes, allowed, filtered,
                      dedupe, max_codes, K, D, I, n_chunks):
    """``searches`` with the queries split into n_chunks chunks, one per thread."""
    nq = qcodes.shape[0]
    n_chunks = max(1, min(nq, n_chunks))
    for ch in prange(n_chunks):
        _search_rows(qcodes, c, scale, probes, code_addr, id_addr, sizes, allowed, filtered,
                     dedupe, max_codes, K, D, I, ch * nq // n_chunks, (ch + 1) * nq // n_chunks)


# ---------------------------------------------------------------------- query encoding
TINY = np.finfo(np.float32).tiny


@njit(cache=True, nogil=True)
def _block_sum(a, lo, n):
    """numpy's float32 sum of a[lo:lo + n], n <= 128: 8 accumulators (n < 8: one)."""
    if n < 8:
        s = np.float32(0)
        for i in range(lo, lo + n):
            s += a[i]
        return s
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        s += a[lo + i]
        i += 1
    return s


@njit(cache=True, nogil=True)
def _pairwise_sum(a, n):
    """The float32 sum of a[:n] in numpy's order (pairwise summation: ``_block_sum`` up
    to 128 values, above that the sum of two halves, the first a multiple of 8 long), so
    that it equals numpy's sum bit for bit. The halving runs on a stack (numba caches no
    recursive function)."""
    if n <= 128:
        return _block_sum(a, 0, n)
    los = np.zeros(64, np.int64)
    ns = np.zeros(64, np.int64)
    state = np.zeros(64, np.int64)   # 0: new, 1: first half summed, 2: both
    left = np.zeros(64, np.float32)
    d, ns[0], s = 0, n, np.float32(0)
    while d >= 0:
        if ns[d] <= 128:
            s = _block_sum(a, los[d], ns[d])
            d -= 1
            continue
        half = ns[d] // 2
        half -= half % 8
        if state[d] == 2:
            s = left[d] + s
            d -= 1
            continue
        if state[d] == 1:
            left[d] = s
        state[d] += 1
        los[d + 1] = los[d] + (half if state[d] == 2 else 0)
        ns[d + 1] = ns[d] - half if state[d] == 2 else half
        state[d + 1] = 0
        d += 1
    return s


@njit(cache=True, nogil=True)
def _encode_query(acts, bias, n_active, z, asymmetric, code, c, v, cand, a, b, w):
    """One query's code (into ``code``, uint8, zeroed here) from its inputs acts less bias
    (float32 (m,) each; bias of length 0: none), and with ``asymmetric`` its offsets c
    (m,): the inputs less midway between the n_active-th and (n_active + 1)-th largest;
    returns scale, the mean |c| (at least float32's tiny; ``_search.encode_queries``).
    v, a, b, w: float32 scratch (m,); cand: int32 scratch (m + 8,)."""
    m = acts.shape[0]
    for j in range(m):
        v[j] = acts[j] - bias[j] if bias.shape[0] else acts[j]
    code[:] = 0
    select_row(v, None, n_active, z, c, cand, a, b, w, code)
    if not asymmetric:
        return np.float32(1)
    lo, hi = np.float32(-np.inf), np.float32(np.inf)
    for j in range(m):     # the largest unit left out, the smallest taken
        if (code[j >> 3] >> (j & 7)) & 1:
            hi = min(hi, v[j])
        else:
            lo = max(lo, v[j])
    mid = (lo + hi) / np.float32(2)
    for j in range(m):
        c[j] = v[j] - mid
        a[j] = abs(c[j])
    return max(np.float32(np.float64(_pairwise_sum(a, m)) / m), TINY)


@njit(cache=True, nogil=True)
def _encoding_scratch(m):
    return (np.empty(m, np.float32), np.empty(m + 8, np.int32), np.empty(m, np.float32),
            np.empty(m, np.float32), np.empty(m, np.float32))


@njit(cache=True, nogil=True)
def query_codes(acts, bias, n_active, z, code_size, asymmetric):
    """Codes uint8 (nq, code_size) (zero past the m units), and with ``asymmetric`` c
    float32 (nq, m) and scale float32 (nq,) (``weighted_distances``; else (0, m) and (0,)),
    of queries whose hidden-unit inputs less bias are acts float32 (nq, m) less bias
    float32 (m,) (length 0: none); z: ``_encoding_kernels.threshold_z``."""
    nq, m = acts.shape
    codes = np.empty((nq, code_size), np.uint8)
    c = np.empty((nq if asymmetric else 0, m), np.float32)
    scale = np.empty(nq if asymmetric else 0, np.float32)
    v, cand, a, b, w = _encoding_scratch(m)
    ci = np.empty(m, np.float32)
    for i in range(nq):
        s = _encode_query(acts[i], bias, n_active, z, asymmetric, codes[i], ci, v, cand, a, b, w)
        if asymmetric:
            c[i] = ci
            scale[i] = s
    return codes, c, scale


# ---------------------------------------------------------------------- range search
@njit(cache=True, nogil=True)
def _range_one(q, probes, code_addr, id_addr, sizes, radius, H, I, start):
    """The number of codes at Hamming distance < radius in the probed lists; with
    start >= 0, their distances and ids are also written to H and I from ``start``."""
    cs = q.shape[0]
    qa = q.ctypes.data
    w = _word_tuple(q)
    regular = regular_code_size(cs)
    count = 0
    for lst in probes:
        if lst < 0:
            continue
        n = sizes[lst]
        ca, ia = code_addr[lst], id_addr[lst]
        r = -1
        while True:   # distance <= radius and id < the least int64: distance < radius
            r, h, i = _next_before(ca, ia, qa, w, cs, regular, r + 1, n, radius,
                                     np.int64(INT64_MIN))
            if r == n:
                break
            if start >= 0:
                H[start + count] = h
                I[start + count] = i
            count += 1
    return count


@njit(cache=True, nogil=True)
def range_matches(qcodes, probes, code_addr, id_addr, sizes, radius):
    """lims int64 (nq + 1,), H int32 and I int64: the codes at Hamming distance < radius in
    each query's probed lists (query i's are at lims[i]:lims[i + 1], in scan order; an id in
    several probed lists appears once per list)."""
    nq = qcodes.shape[0]
    lims = np.zeros(nq + 1, np.int64)
    H = np.empty(0, np.int32)
    I = np.empty(0, np.int64)
    for i in range(nq):
        lims[i + 1] = lims[i] + _range_one(qcodes[i], probes[i], code_addr, id_addr, sizes,
                                           radius, H, I, -1)
    H = np.empty(lims[nq], np.int32)
    I = np.empty(lims[nq], np.int64)
    for i in range(nq):
        _range_one(qcodes[i], probes[i], code_addr, id_addr, sizes, radius, H, I, lims[i])
    return lims, H, I
