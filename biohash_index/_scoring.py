"""Asymmetric scoring: re-rank Hamming candidates by the query's real unit inputs.

A query's code throws away how far each unit is from the query's threshold; a stored
code is all that is kept of a database vector. ``rerank`` scores each candidate with the
weighted Hamming distance of ``_scoring_kernels`` (the query's unit inputs against the
stored bits) and keeps the k best. Candidates come from the Hamming search of the storage,
SHORTLIST times as many as asked for (at least MIN_SHORTLIST): on the ANN benchmarks that
shortlist already holds the asymmetric top 10 (``benchmarks/ann_text.py``).
"""
from __future__ import annotations

import numpy as np

from ._scoring_kernels import weighted_distances
from ._threads import numba_parallel

SHORTLIST = 8
MIN_SHORTLIST = 64


def shortlist_size(k: int, ntotal: int) -> int:
    """Hamming candidates to fetch for k results: SHORTLIST k, at least MIN_SHORTLIST,
    at most ntotal (and never fewer than k)."""
    return max(k, min(ntotal, max(MIN_SHORTLIST, SHORTLIST * k)))


def query_offsets(acts: np.ndarray, hash_length: int) -> tuple[np.ndarray, np.ndarray]:
    """c float32 (nq, m): unit inputs less each query's threshold (midway between its h-th
    and (h+1)-th largest, h = hash_length); scale float32 (nq,): mean |c| per query (> 0)."""
    m, h = acts.shape[1], hash_length
    part = np.partition(acts, (m - h - 1, m - h), axis=1)
    c = (acts - (part[:, m - h - 1:m - h] + part[:, m - h:m - h + 1]) / 2).astype(np.float32)
    scale = np.maximum(np.abs(c).mean(axis=1), np.finfo(np.float32).tiny)  # constant row: D = 0
    return c, scale.astype(np.float32)


def rerank(acts: np.ndarray, hash_length: int, codes: np.ndarray, pos: np.ndarray, k: int):
    """The k best of the candidates ``pos`` by weighted Hamming distance.

    acts: float32 (nq, m) query unit inputs; codes: uint8 (n, code_size) stored codes;
    pos: int64 (nq, K) candidate positions, -1 for none, in Hamming order. Returns D float32
    (nq, k) ascending (ties in Hamming order; +inf where no candidate) and positions int64
    (nq, k).
    """
    c, scale = query_offsets(acts, hash_length)
    with numba_parallel():
        D = weighted_distances(c, scale, codes, pos)
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, order, 1), np.take_along_axis(pos, order, 1)


def search_asymmetric(qcodes: np.ndarray, acts: np.ndarray, hash_length: int,
                      codes: np.ndarray, hamming_search, k: int):
    """The k nearest stored codes by weighted Hamming distance among each query's Hamming
    shortlist: ``hamming_search(qcodes, K)`` returns (distances, int64 (nq, K) positions
    into codes, -1 for none) as faiss's binary search does. qcodes: uint8 (nq, code_size)
    query codes; acts: float32 (nq, m) their unit inputs; codes: uint8 (n, code_size)
    stored codes. Returns D float32 (nq, k) and positions int64 (nq, k), as ``rerank``."""
    _, P = hamming_search(qcodes, shortlist_size(k, len(codes)))
    return rerank(acts, hash_length, codes, P, k)
