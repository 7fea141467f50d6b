"""Retrieval metrics: mAP over a ranking by label, precision@k and recall@k."""
from __future__ import annotations

import numpy as np


def average_precisions(I: np.ndarray, db_labels: np.ndarray, q_labels: np.ndarray,
                       R: int | None = None) -> np.ndarray:
    """Average precision of each query's ranking, float64 (nq,).

    I: int (nq, n) rows of the database returned in rank order (-1 = no result);
    relevance is label equality. With R None this is AP@All: normalised by the number of
    relevant items in the whole database; with R, AP over the top R of the ranking,
    normalised by the relevant items found there (the usual mAP@R of hashing papers).
    """
    I = np.asarray(I)
    if R is not None:
        I = I[:, :R]
    valid = I >= 0
    rel = (db_labels[np.where(valid, I, 0)] == q_labels[:, None]) & valid
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, I.shape[1] + 1)
    prec_sum = np.sum(np.where(rel, hits / ranks, 0.0), axis=1)
    if R is None:
        n_rel = np.array([(db_labels == c).sum() for c in q_labels])
    else:
        n_rel = hits[:, -1]
    return np.where(n_rel > 0, prec_sum / np.maximum(n_rel, 1), 0.0)


def mean_average_precision(I, db_labels, q_labels, R: int | None = None) -> float:
    """Mean of ``average_precisions``, as a fraction in [0, 1]."""
    return float(average_precisions(I, db_labels, q_labels, R).mean())


def precision_at_k(I, db_labels, q_labels, k: int) -> float:
    """Fraction of the top k results that share the query's label, averaged over queries."""
    I = np.asarray(I)[:, :k]
    rel = (db_labels[np.where(I >= 0, I, 0)] == q_labels[:, None]) & (I >= 0)
    return float(rel.sum(axis=1).mean() / k)


def recall_at_k(I, gt, k: int) -> float:
    """|top-k returned ∩ true top-k| / k, averaged over queries; gt: int (nq, >= k)."""
    I = np.asarray(I)[:, :k]
    gt = np.asarray(gt)[:, :k]
    return float(np.mean([len(np.intersect1d(a[a >= 0], b)) / k for a, b in zip(I, gt)]))
