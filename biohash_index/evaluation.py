"""Retrieval metrics (from ``_metrics``) and the runs of the ``eval`` and ``demo`` commands.

Metrics over a search result ``I`` (int (nq, n), rows in rank order, -1 = none): label
metrics (relevance = same label) ``average_precisions`` / ``mean_average_precision`` (mAP@All
or mAP@R) and ``precision_at_k``; the nearest-neighbour metric ``recall_at_k`` against exact
ground truth. Every metric takes the ranking exactly as returned: ties are not re-ordered.

Runs: ``fit`` (train and fill an index, timed), ``timed_search`` (queries per second of a
warm index), ``lsh_search`` (faiss's IndexLSH, the baseline), ``labels_vs_lsh`` and
``neighbors_vs_lsh``.
"""
from __future__ import annotations

import time

import faiss
import numpy as np

from ._index import BioHashIndex
from ._metrics import (average_precisions, mean_average_precision, precision_at_k,
                       recall_at_k)

WARMUP_QUERIES = 10  # timed_search searches these first, untimed
__all__ = ["average_precisions", "mean_average_precision", "precision_at_k", "recall_at_k",
           "fit", "timed_search", "lsh_search", "labels_vs_lsh", "neighbors_vs_lsh"]


# ---------------------------------------------------------------- runs
def fit(index: BioHashIndex, xt: np.ndarray, xb: np.ndarray) -> float:
    """Train ``index`` on xt, add xb; returns the seconds training took."""
    t = time.perf_counter()
    index.train(xt)
    t_train = time.perf_counter() - t
    index.add(xb)
    return t_train


def timed_search(index: BioHashIndex, xq: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """I (nq, k) of a search and its queries per second, timed after an untimed warm-up
    search of the first WARMUP_QUERIES queries (the first search of an index compiles,
    builds posting lists and pages the codes in)."""
    index.search(xq[:WARMUP_QUERIES], k)
    t = time.perf_counter()
    _, I = index.search(xq, k)
    return I, len(xq) / max(time.perf_counter() - t, 1e-9)


def lsh_search(xb: np.ndarray, xq: np.ndarray, nbits: int, k: int,
               trained: bool = False) -> np.ndarray:
    """I (nq, k) of faiss ``IndexLSH(d, nbits)`` holding xb: as is (the index BioHashIndex
    replaces), or with ``trained`` a random rotation and per-bit thresholds learned on xb,
    all centred with xb's mean (its form for retrieval by label)."""
    if not trained:
        lsh = faiss.IndexLSH(xb.shape[1], nbits)
        lsh.add(xb)
        return lsh.search(xq, k)[1]
    lsh = faiss.IndexLSH(xb.shape[1], nbits, True, True)
    mean = xb.mean(axis=0)
    lsh.train(xb - mean)
    lsh.add(xb - mean)
    return lsh.search(xq - mean, k)[1]


def labels_vs_lsh(xb, yb, xq, yq, hash_length: int, seed: int = 0) -> tuple[float, float, float]:
    """(BioHash mAP@All, trained IndexLSH mAP@All, BioHash training seconds): an index of
    ``task="labels"`` trained on and filled with xb (labels yb), queries xq (labels yq)."""
    index = BioHashIndex(xb.shape[1], hash_length, task="labels", seed=seed)
    t_train = fit(index, xb, xb)
    _, I = index.search(xq, len(xb))
    ours = mean_average_precision(I, yb, yq)
    base = mean_average_precision(lsh_search(xb, xq, hash_length, len(xb), trained=True), yb, yq)
    return ours, base, t_train


def neighbors_vs_lsh(xb, xq, hash_lengths, seed: int = 0, k: int = 10):
    """For each n of hash_lengths, the recall@k of the exact L2 top k of
    ``BioHashIndex(d, n)`` filled with xb (no train call), ``IndexLSH(d, n)`` and
    ``IndexLSH`` with codes of the same bytes, and the BioHash code size in bytes: yields
    ([3 recalls], code_size)."""
    _, gt = faiss.knn(xq, xb, k)
    for n in hash_lengths:
        index = BioHashIndex(xb.shape[1], n, seed=seed)
        index.add(xb)
        found = [index.search(xq, k)[1], lsh_search(xb, xq, n, k),
                 lsh_search(xb, xq, 8 * index.code_size, k)]
        yield [recall_at_k(I, gt, k) for I in found], index.code_size
