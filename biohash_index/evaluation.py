"""Retrieval metrics over a search result ``I`` (int (nq, n), rows in rank order, -1 = none).

Label metrics (relevance = same label): ``average_precisions`` / ``mean_average_precision``
(mAP@All or mAP@R) and ``precision_at_k``. Nearest-neighbour metric: ``recall_at_k``
against exact ground truth. Every metric takes the ranking exactly as returned: ties are
not re-ordered.

Runs (the ``eval`` and ``demo`` commands): ``fit`` (train and fill an index, timed),
``timed_search`` (queries per second of a warm index), ``lsh_search`` (faiss's IndexLSH, the
baseline), ``labels_vs_lsh`` and ``neighbors_vs_lsh``.
"""
from __future__ import annotations

import time

import faiss
import numpy as np

from ._index import BioHashIndex
from ._validation import check_positive_int

WARMUP_QUERIES = 10  # timed_search searches these first, untimed
__all__ = ["average_precisions", "mean_average_precision", "precision_at_k", "recall_at_k",
           "fit", "timed_search", "lsh_search", "labels_vs_lsh", "neighbors_vs_lsh"]


def _check_result(I, name: str = "I") -> np.ndarray:
    I = np.asarray(I)
    if I.ndim != 2 or not np.issubdtype(I.dtype, np.integer):
        raise ValueError(f"{name} must be a 2-D integer array (nq, k) of result rows, "
                         f"got shape {I.shape} and dtype {I.dtype}")
    return I


def _relevance(I, db_labels, q_labels) -> np.ndarray:
    """bool (nq, k): result [q, j] exists and has the label of query q."""
    I = _check_result(I)
    db_labels, q_labels = np.asarray(db_labels), np.asarray(q_labels)
    if db_labels.ndim != 1 or q_labels.shape != (len(I),):
        raise ValueError(f"q_labels must have shape ({len(I)},) and db_labels must be 1-D, "
                         f"got {q_labels.shape} and {db_labels.shape}")
    if I.size and I.max() >= len(db_labels):
        raise ValueError(f"I refers to row {I.max()}, but db_labels has {len(db_labels)} rows")
    valid = I >= 0
    return (db_labels[np.where(valid, I, 0)] == q_labels[:, None]) & valid


def average_precisions(I, db_labels, q_labels, R: int | None = None) -> np.ndarray:
    """Average precision of each query's ranking, float64 (nq,).

    I: int (nq, n) database rows in rank order (-1 = no result); db_labels (n_db,),
    q_labels (nq,). With R None this is AP@All: sum over ranks l of precision@l * rel(l),
    divided by the number of relevant items in the whole database (items missing from I
    count as not retrieved). With R, AP over the top R of the ranking, divided by the
    relevant items found there (the mAP@R of hashing papers; 0 when none is found).
    """
    if R is not None:
        R = check_positive_int(R, "R")
        I = _check_result(I)[:, :R]
    rel = _relevance(I, db_labels, q_labels)
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    prec_sum = np.sum(np.where(rel, hits / ranks, 0.0), axis=1)
    if R is None:
        classes, counts = np.unique(np.asarray(db_labels), return_counts=True)
        pos = np.clip(np.searchsorted(classes, q_labels), 0, len(classes) - 1)
        n_rel = np.where(classes[pos] == q_labels, counts[pos], 0)
    else:
        n_rel = hits[:, -1] if rel.shape[1] else np.zeros(len(rel), np.int64)
    return np.where(n_rel > 0, prec_sum / np.maximum(n_rel, 1), 0.0)


def mean_average_precision(I, db_labels, q_labels, R: int | None = None) -> float:
    """Mean of ``average_precisions`` over the queries, as a fraction in [0, 1]."""
    return float(average_precisions(I, db_labels, q_labels, R).mean())


def precision_at_k(I, db_labels, q_labels, k: int) -> float:
    """Fraction of the top k results that share the query's label, averaged over queries
    (a missing result counts as not relevant)."""
    k = check_positive_int(k, "k")
    return float(_relevance(_check_result(I)[:, :k], db_labels, q_labels).sum(axis=1).mean() / k)


def recall_at_k(I, gt, k: int) -> float:
    """|top-k returned ∩ true top-k| / k, averaged over queries.

    I: int (nq, >= k) search result; gt: int (nq, >= k) exact neighbours, nearest first.
    """
    k = check_positive_int(k, "k")
    I, gt = _check_result(I), _check_result(gt, "gt")
    if len(I) != len(gt) or I.shape[1] < k or gt.shape[1] < k:
        raise ValueError(f"I and gt must have the same number of rows and >= {k} columns, "
                         f"got {I.shape} and {gt.shape}")
    I, gt = I[:, :k], gt[:, :k]
    found = (I[:, :, None] == gt[:, None, :]) & (I[:, :, None] >= 0)
    return float(found.any(axis=1).sum(axis=1).mean() / k)


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
