"""Retrieval metrics over a search result ``I`` (int (nq, n), rows in rank order, -1 = none),
a leaf module: ``evaluation`` exports them, and training's centring check uses ``recall_at_k``.

Label metrics (relevance = same label): ``average_precisions`` / ``mean_average_precision``
(mAP@All or mAP@R) and ``precision_at_k``. Nearest-neighbour metric: ``recall_at_k``
against exact ground truth. Every metric takes the ranking exactly as returned: ties are
not re-ordered.
"""
from __future__ import annotations

import numpy as np

from ._validation import check_positive_int


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
