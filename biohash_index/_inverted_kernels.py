"""Numba kernels of the inverted-list search over sparse binary codes.

Every hidden unit has a posting list: the storage positions of the codes with that bit set,
in increasing order. A query reads only the lists of its own active units and counts, for
each stored code it meets, the overlap (bits set in both). The Hamming distance follows as
``popcount(q) + popcount(x) - 2 * overlap``; codes the query never meets share no bit with
it. Results are ordered by (distance, id), the order of every search (``_search.py``), so
the ranking is exactly that of exhaustive Hamming search. Ids enter as ranks: rank[p] is the
rank of the id at position p among the stored ids, and by_rank its inverse.
"""
import numpy as np
from numba import njit, prange

# trailing zeros of a byte: the index of its lowest set bit (0 unused)
_TZ = np.array([0] + [(i & -i).bit_length() - 1 for i in range(1, 256)], np.int64)


@njit(cache=True, nogil=True)
def build_postings(codes, nbits):
    """Posting lists of uint8 (n, code_size) codes.

    Returns ptr int64 (nbits + 1,), pos int32 (total set bits,) and pop int32 (n,): the
    positions of the codes with bit j set are pos[ptr[j]:ptr[j + 1]], increasing; pop is the
    popcount of each code.
    """
    n, code_size = codes.shape
    counts = np.zeros(nbits + 1, np.int64)
    pop = np.zeros(n, np.int32)
    for i in range(n):
        for c in range(code_size):
            byte = np.int64(codes[i, c])
            while byte:
                counts[8 * c + _TZ[byte] + 1] += 1
                pop[i] += 1
                byte &= byte - 1
    ptr = np.cumsum(counts)
    fill = ptr[:-1].copy()
    pos = np.empty(ptr[-1], np.int32)
    for i in range(n):
        for c in range(code_size):
            byte = np.int64(codes[i, c])
            while byte:
                j = 8 * c + _TZ[byte]
                pos[fill[j]] = i
                fill[j] += 1
                byte &= byte - 1
    return ptr, pos, pop


@njit(cache=True, nogil=True)
def _search_one(q, ptr, pos, pop, rank, by_rank, by_pop, mask, filtered, k, cnt, touched,
                keys, D, I):
    """k nearest by (Hamming distance, id) for one uint8 (code_size,) query code.

    cnt int32 (n,) is all zero on entry and left so; touched int32 (n,), keys int64 (n + k,)
    are scratch. Only positions p with mask[p] count if ``filtered``. Writes D int32 (k,)
    and I int64 (k,) positions; -1 past the results.
    """
    n = pop.shape[0]
    nt = 0
    pq = 0
    for c in range(q.shape[0]):
        byte = np.int64(q[c])
        while byte:
            j = 8 * c + _TZ[byte]
            pq += 1
            for t in range(ptr[j], ptr[j + 1]):
                p = pos[t]
                if cnt[p] == 0:
                    touched[nt] = p
                    nt += 1
                cnt[p] += 1
            byte &= byte - 1
    nk = 0
    for t in range(nt):  # key = distance * n + rank: sorts by distance, then id
        p = touched[t]
        if not filtered or mask[p]:
            keys[nk] = np.int64(pq + pop[p] - 2 * cnt[p]) * n + rank[p]
            nk += 1
    found = 0  # codes not met, by (popcount, id): the first k of them can compete
    for t in range(n):
        if found == k:
            break
        p = by_pop[t]
        if cnt[p] == 0 and (not filtered or mask[p]):
            keys[nk] = np.int64(pq + pop[p]) * n + rank[p]
            nk += 1
            found += 1
    for t in range(nt):
        cnt[touched[t]] = 0
    kk = min(k, nk)
    if nk > kk:
        _select_smallest(keys, nk, kk)
    sel = np.sort(keys[:kk])
    for r in range(kk):
        D[r] = sel[r] // n
        I[r] = by_rank[sel[r] % n]
    for r in range(kk, k):
        D[r] = np.iinfo(np.int32).max
        I[r] = -1


@njit(cache=True, nogil=True)
def _select_smallest(a, size, count):
    """Reorder a[:size] in place so that a[:count] holds its count smallest values,
    0 < count < size.

    Wirth's selection (Hoare's partition around a[count - 1] until it is in place); compiles
    in a fraction of the time ``np.partition`` takes.
    """
    lo, hi, r = 0, size - 1, count - 1
    while lo < hi:
        x = a[r]
        i, j = lo, hi
        while i <= j:
            while a[i] < x:
                i += 1
            while x < a[j]:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if j < r:
            lo = i
        if r < i:
            hi = j


@njit(cache=True, nogil=True, parallel=True)
def inverted_search(xq, ptr, pos, pop, rank, by_rank, by_pop, mask, filtered, k, n_chunks):
    """k nearest stored codes of each uint8 (nq, code_size) query by Hamming distance.

    ptr, pos, pop from ``build_postings``; rank, by_rank int64 (n,): each position's id
    rank and its inverse; by_pop int64 (n,) positions sorted by (popcount, id); mask bool
    (n,), the positions that count if ``filtered``. Returns D int32 (nq, k) and I int64
    (nq, k) storage positions, each row ordered by (distance, id); -1 and int32 max where
    fewer than k codes count. Queries are split into ``n_chunks`` chunks (one per thread),
    each with O(n) scratch reused across its queries, so a query costs the length of its
    posting lists plus its candidates, not O(n).
    """
    nq = xq.shape[0]
    n = pop.shape[0]
    D = np.empty((nq, k), np.int32)
    I = np.empty((nq, k), np.int64)
    n_chunks = max(1, min(nq, n_chunks))
    for ch in prange(n_chunks):
        cnt = np.zeros(n, np.int32)
        touched = np.empty(n, np.int32)
        keys = np.empty(n + k, np.int64)
        for i in range(ch * nq // n_chunks, (ch + 1) * nq // n_chunks):
            _search_one(xq[i], ptr, pos, pop, rank, by_rank, by_pop, mask, filtered, k, cnt,
                        touched, keys, D[i], I[i])
    return D, I
