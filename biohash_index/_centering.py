"""How much of the training mean to subtract: the share that best keeps the training
set's own nearest neighbours.

Centring balances the bits (each unit is active for about half the data), which matters
most for short codes; on data whose neighbours are by angle (unit-norm text embeddings)
it also moves those angles, which costs recall once codes are long enough to resolve them
(``benchmarks/ann_text.py``). ``best_share`` settles the trade on the data: it holds out a
tenth of a sample of training rows as queries, finds their exact L2 neighbours among the
rest, and keeps the share of the mean (``SHARES``) whose codes find most of them, searched
as the index searches.
"""
from __future__ import annotations

from typing import Callable

import faiss
import numpy as np

from ._metrics import recall_at_k
from ._search import search
from ._storage import FlatCodeStorage, padded_code_size

SHARES = (1.0, 0.75, 0.5, 0.25, 0.0)  # tried in this order: a tie keeps the larger share
SAMPLE_BYTES = 1 << 26                # the sample of training rows: at most 64 MiB ...
MAX_ROWS = 10_000                     # ... and 10,000 rows, a tenth of them queries
MIN_ROWS = 200                        # fewer rows: no check, the whole mean is subtracted
K = 10                                # neighbours per held-out query


def sample_rows(d: int) -> int:
    """Training rows the check samples for d-dimensional vectors: as many as SAMPLE_BYTES
    hold, at most MAX_ROWS; 0 (no check) where that is fewer than MIN_ROWS (d > 83,886)."""
    rows = min(MAX_ROWS, SAMPLE_BYTES // (4 * d))
    return rows if rows >= MIN_ROWS else 0


def best_share(model_for: Callable[[float], object], sample: np.ndarray) -> tuple[float, list]:
    """(share, recalls): the share of the mean whose model (``model_for(share)``, a trained
    ``BioHashModel``) best finds the exact K nearest neighbours of held-out rows of the
    float32 (n, d) ``sample``, and the recall@K of each share in ``SHARES``.
    """
    if len(sample) < MIN_ROWS:
        return 1.0, []
    recalls = held_out_recalls([model_for(s) for s in SHARES], sample)
    return SHARES[int(np.argmax(recalls))], recalls


def held_out_recalls(models: list, sample: np.ndarray) -> list[float]:
    """Recall@K of each model (trained ``BioHashModel``s) for held-out rows of the float32
    (n, d) ``sample`` (n >= MIN_ROWS): its first tenth are the queries, their exact K
    nearest neighbours among the rest the truth. Also the check of ``BioHashModel``'s
    learned projection (which subspace size)."""
    nq = len(sample) // 10
    xq, xb = sample[:nq], sample[nq:]
    _, exp = np.frexp(np.abs(sample).max())  # a power of two: the same neighbours, and
    _, gt = faiss.knn(np.ldexp(xq, -exp), np.ldexp(xb, -exp), K)  # no overflow of squares
    return [neighbour_recall(model, xb, xq, gt) for model in models]


def neighbour_recall(model, xb: np.ndarray, xq: np.ndarray, gt: np.ndarray) -> float:
    """Recall@K of int64 (nq, K) true neighbours gt (row numbers of xb) among the K found
    by searching the codes of float32 (n, d) xb for float32 (nq, d) xq, as ``search`` does
    for the model (a trained ``BioHashModel``) over flat storage."""
    storage = FlatCodeStorage(8 * padded_code_size(model.params.code_size))
    storage.add(model.encode(xb), np.arange(len(xb), dtype=np.int64))
    _, I = search(model, storage, xq, K)
    return recall_at_k(I, gt, K)
