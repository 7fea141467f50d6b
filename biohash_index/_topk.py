"""Top-k in a deterministic order, and exact merging of top-k lists from shards.

Hamming distances between sparse codes (hash_length bits set in each) are small even integers,
so ties are the rule: faiss returns tied vectors in an order (and, at the k-th distance, a
selection) that depends on how the data is laid out. Here results are ordered by (distance, id)
ascending, a total order. Under it the global top-k is made of every shard's own top-k, so
merging the shards' lists gives exactly the top-k of one index holding all the vectors, ties
included.
"""
from __future__ import annotations

import numpy as np


def search_ordered(storage, codes: np.ndarray, k: int):
    """The k nearest codes in (distance, id) order.

    storage: a code storage (``BioHashIndex.storage``); codes: uint8 (nq, code_size).
    Returns D int32 (nq, k) Hamming distances and I int64 (nq, k) ids, missing results
    I = -1 and D = 2**31 - 1 (last, as in faiss). Where faiss's k-th distance r may be shared
    by vectors it left out, a range search for distance <= r finds them all.
    """
    D, I = storage.search(codes, k)
    D, I = D.astype(np.int32), I.astype(np.int64)
    order = np.lexsort((I, D), axis=1)
    D, I = np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)
    full = I[:, -1] >= 0  # k results: others may tie with the k-th
    for r in np.unique(D[full, -1]):
        rows = np.flatnonzero(full & (D[:, -1] == r))
        lims, Dr, Ir = storage.range_search(codes[rows], int(r) + 1)
        for j, q in enumerate(rows):
            dq, iq = Dr[lims[j]:lims[j + 1]].astype(np.int32), Ir[lims[j]:lims[j + 1]]
            best = np.lexsort((iq, dq))[:k]
            D[q], I[q] = dq[best], iq[best]
    return D, I


def merge_topk(Ds: list[np.ndarray], Is: list[np.ndarray], k: int):
    """Merge per-shard (nq, k_s) results into the (nq, k) best in (distance, id) order.

    Exact when every shard's list is its own top-k in that order (``search_ordered``).
    """
    D, I = np.concatenate(Ds, axis=1), np.concatenate(Is, axis=1)
    order = np.lexsort((I, D), axis=1)[:, :k]
    return np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)
