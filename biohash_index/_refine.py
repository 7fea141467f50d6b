"""``BioHashIndexRefine``: Hamming candidates re-ranked by exact float distance.

Like ``faiss.IndexRefineFlat``: the BioHash index proposes ``k * k_factor`` candidates per
query, the float vectors kept beside it (in a ``faiss.IndexFlat`` under the same ids) give
their exact L2 or inner-product distances, and the best k of those are returned. Besides
raising recall, this settles the many ties between equal Hamming distances.
"""
from __future__ import annotations

import dataclasses

import faiss
import numpy as np

from ._faiss_compat import FAISS_METRICS, NotAFaissIndex, check_metric, result_arrays, selected_ids
from ._formats._io import write_bytes_atomic
from ._formats.refine import RefineState, decode_refine, encode_refine
from ._index import BioHashIndex, next_id_after
from ._locking import LockPerInstance, reads, writes
from ._refine_kernels import l2_distances
from ._validation import check_ids, check_positive_int, check_real, check_vectors, next_ids

REFINE_BLOCK = 1 << 22  # floats of candidate vectors gathered at once

# Hamming candidates per candidate the base index proposes: exact distances order the
# k * k_factor proposed, so its weighted re-rank need only choose them from twice as many,
# not from _search's 8 x (4 x fewer codes re-ranked; docs/recall_speed.md)
SHORTLIST = 2
FLT_MAX = np.finfo(np.float32).max  # faiss's distance for a missing result (-FLT_MAX for "ip")


class BioHashIndexRefine(NotAFaissIndex):
    """A ``BioHashIndex`` plus the float vectors, for exact re-ranking of its candidates.

    base_index: an empty ``BioHashIndex`` (trained or not); metric: "l2" or
    ``faiss.METRIC_L2`` (squared L2 distances, ascending, as ``faiss.IndexFlatL2``) or "ip"
    or ``faiss.METRIC_INNER_PRODUCT`` (inner products, descending);
    k_factor: float >= 1, candidates fetched per result (faiss's default is 1, which only
    re-orders the top k; larger values raise recall).

    API: ``train``, ``add``, ``add_with_ids``, ``search``, ``remove_ids``, ``reset``,
    ``reconstruct_batch``, ``save``/``load``, ``ntotal``, ``d``, ``is_trained``,
    ``metric_type``.
    ``range_search`` is not offered (faiss's ``IndexRefine`` has none either): a Hamming
    radius says nothing about an exact-distance radius. Thread safety as ``BioHashIndex``:
    searches in parallel, changes alone.
    """

    _lock = LockPerInstance()

    def __init__(self, base_index: BioHashIndex, metric: str = "l2", k_factor: float = 1.0):
        if not isinstance(base_index, BioHashIndex):
            raise TypeError(f"base_index must be a BioHashIndex, got {type(base_index).__name__}")
        if base_index.ntotal:
            raise ValueError(f"base_index must be empty, it holds {base_index.ntotal} vectors")
        self._setup(base_index, check_metric(metric), k_factor, 0)

    def _setup(self, base_index: BioHashIndex, metric: str, k_factor: float,
               next_id: int) -> None:
        self.base_index = base_index
        self.metric = metric
        self.k_factor = k_factor
        self.refine_index = faiss.IndexIDMap2(faiss.IndexFlat(base_index.d, FAISS_METRICS[metric]))
        self._next_id = next_id
        self._view = None   # the stored vectors and how to find ids (``_stored``)

    @property
    def k_factor(self) -> float:
        return self._k_factor

    @k_factor.setter
    def k_factor(self, value: float) -> None:
        self._k_factor = check_real(value, "k_factor", low=1.0)

    @property
    def d(self) -> int:
        return self.base_index.d

    @property
    def ntotal(self) -> int:
        return self.base_index.ntotal

    @property
    def is_trained(self) -> bool:
        return self.base_index.is_trained

    @property
    def metric_type(self) -> int:
        """``faiss.METRIC_L2`` or ``faiss.METRIC_INNER_PRODUCT``, as ``metric``."""
        return FAISS_METRICS[self.metric]

    def __repr__(self) -> str:
        return (f"BioHashIndexRefine({self.base_index!r}, metric={self.metric!r}, "
                f"k_factor={self.k_factor})")

    @writes
    def train(self, x) -> None:
        """Train the base index on float (n, d) vectors."""
        self.base_index.train(x)

    @writes
    def add(self, x) -> None:
        """Add float (n, d) vectors with ids next_id .. next_id + n - 1, as ``BioHashIndex.add``."""
        x = check_vectors(x, self.d, "x")
        self.add_with_ids(x, next_ids(self._next_id, len(x)))

    @writes
    def add_with_ids(self, x, ids) -> None:
        """Add float (n, d) vectors under int64 (n,) ids, which must be new and distinct."""
        x = check_vectors(x, self.d, "x")
        ids = check_ids(ids, len(x))
        self.base_index.add_with_ids(x, ids)    # validates ids and refuses clashes first
        self.refine_index.add_with_ids(x, ids)
        self._view = None
        self._next_id = next_id_after(self._next_id, ids)

    @reads
    def search(self, xq, k: int, *, params=None, D=None, I=None):
        """k nearest stored vectors by exact distance among the ``k * k_factor`` best by
        Hamming distance.

        Returns D float32 (nq, k) (squared L2 or inner products) and I int64 (nq, k); where
        fewer than k are found, I is -1 and D is FLT_MAX ("l2") or -FLT_MAX ("ip"), as in faiss.
        params: the base index's search parameters (see ``BioHashIndex.search``; its
        shortlist defaults to SHORTLIST k k_factor Hamming candidates here); D, I:
        preallocated float32 / int64 (nq, k) result arrays, as in faiss.
        """
        k = check_positive_int(k, "k")
        xq = check_vectors(xq, self.d, "xq")
        D, I = result_arrays(D, I, (len(xq), k))
        kc = max(k, int(k * self.k_factor))
        opts = self.base_index.search_options(params)
        if opts.shortlist is None:
            opts = dataclasses.replace(opts, shortlist=SHORTLIST * kc)
        _, I0 = self.base_index.search(xq, kc, params=opts)
        block = max(1, REFINE_BLOCK // (I0.shape[1] * self.d))
        D0 = np.concatenate([self._exact_distances(xq[s:s + block], I0[s:s + block])
                             for s in range(0, len(xq), block)] or [np.zeros(I0.shape, np.float32)])
        order = np.argsort(D0 if self.metric == "l2" else -D0, axis=1, kind="stable")[:, :k]
        rows = np.arange(len(xq))[:, None]
        D[:], I[:] = D0[rows, order], I0[rows, order]
        return D, I

    def _exact_distances(self, xq: np.ndarray, I: np.ndarray) -> np.ndarray:
        """float32 (nq, k') exact distances (squared L2 or inner products) from each query
        to its candidates I (-1: missing, at FLT_MAX or -FLT_MAX), from the stored vectors
        found by position (``_positions``), in numpy's order of summation as before."""
        _, vectors, lookup = self._stored()
        pos = _positions(lookup, I)
        if self.metric == "l2":
            return l2_distances(xq, vectors, pos, FLT_MAX)
        X = vectors[np.maximum(pos, 0)]
        D = np.einsum("qkd,qd->qk", X, xq).astype(np.float32)
        D[pos < 0] = -FLT_MAX
        return D

    def _stored(self) -> tuple[np.ndarray, np.ndarray, tuple]:
        """The stored ids int64 (n,) and vectors float32 (n, d) in storage order (views of
        ``refine_index``'s memory) and the ``_id_lookup`` of the ids, kept until the next
        change."""
        if self._view is None:
            n = self.refine_index.ntotal
            ids, vectors = np.zeros(0, np.int64), np.zeros((0, self.d), np.float32)
            if n:
                flat = faiss.downcast_index(self.refine_index.index)   # its own, also in a copy
                ids = faiss.rev_swig_ptr(self.refine_index.id_map.data(), n)
                vectors = faiss.rev_swig_ptr(flat.get_xb(), n * self.d).reshape(n, self.d)
            self._view = ids, vectors, _id_lookup(ids)
        return self._view

    @reads
    def reconstruct_batch(self, ids) -> np.ndarray:
        """float32 (n, d) stored vectors of int64 (n,) ids (all must be present)."""
        return self.refine_index.reconstruct_batch(check_ids(ids))

    @writes
    def remove_ids(self, ids) -> int:
        """Remove the vectors with these int64 ids, or those a ``faiss.IDSelector`` selects;
        returns how many were removed."""
        if isinstance(ids, faiss.IDSelector):
            ids = selected_ids(ids, self.base_index.storage.ids())
        ids = check_ids(ids)
        self.refine_index.remove_ids(ids)
        self._view = None
        return self.base_index.remove_ids(ids)

    @writes
    def reset(self) -> None:
        """Remove all stored vectors (the base index stays trained)."""
        self.base_index.reset()
        self.refine_index.reset()
        self._view = None
        self._next_id = 0

    @reads
    def save(self, path) -> None:
        """Save to the file ``path`` atomically (see ``write_index_refine``)."""
        write_index_refine(self, path)

    @classmethod
    def load(cls, path) -> "BioHashIndexRefine":
        """Load a file written by ``save``; raises ``BioHashFormatError`` on a bad file."""
        return read_index_refine(path)

    @reads
    def _state(self) -> RefineState:
        """What saving writes: the base index (its codes), the vectors and the settings."""
        ids, vectors, _ = self._stored()
        return RefineState(self.base_index._state(), self.metric, self.k_factor,
                           self._next_id, ids.copy(), vectors.copy())

    @classmethod
    def _from_state(cls, state: RefineState) -> "BioHashIndexRefine":
        """The index ``state`` describes (as loading decoded and checked it): the base index
        with the codes it saved, the vectors under their ids."""
        index = cls.__new__(cls)
        index._setup(BioHashIndex._from_state(state.base), state.metric, state.k_factor,
                     state.next_id)
        index.refine_index.add_with_ids(state.vectors, state.ids)
        return index


def write_index_refine(index: BioHashIndexRefine, path) -> None:
    """Save to one Arrow IPC file (the refine format, docs/format.md): a row per vector
    (``id``, ``vector``), and the metric, k_factor, next id and the base index, codes
    included, in the schema metadata.

    Written to a temporary file and renamed over ``path``: a failed save leaves the
    previous file intact.
    """
    if not isinstance(index, BioHashIndexRefine):
        raise TypeError(f"index must be a BioHashIndexRefine, got {type(index).__name__}")
    write_bytes_atomic(encode_refine(index._state()), path)


def read_index_refine(path) -> BioHashIndexRefine:
    """Load a file written by ``write_index_refine`` (or bytes of one); raises
    ``BioHashFormatError`` naming the file and the part when it is not one or its parts
    disagree. The base index keeps the codes it saved."""
    return BioHashIndexRefine._from_state(decode_refine(path))


def _id_lookup(ids: np.ndarray) -> tuple:
    """(first, n, sorted ids, order) for ``_positions`` of distinct int64 (n,) ids in
    storage order: first the first id when they are consecutive and increasing (as ``add``
    gives them; else None), the ids sorted and the positions that sort them (None when
    the ids are already sorted)."""
    increasing = bool((ids[1:] > ids[:-1]).all())
    if len(ids) and increasing and ids[-1] - ids[0] == len(ids) - 1:
        return int(ids[0]), len(ids), None, None
    if increasing:
        return None, len(ids), ids, None
    order = np.argsort(ids, kind="stable")
    return None, len(ids), ids[order], order


def _positions(lookup: tuple, I: np.ndarray) -> np.ndarray:
    """int64 positions of the ids I among the stored ids (``_id_lookup``), -1 where I is
    -1 or not stored: consecutive ids by subtraction, others by binary search."""
    first, n, sorted_ids, order = lookup
    if first is not None:
        pos = I - first
        return np.where((I != -1) & (pos >= 0) & (pos < n), pos, -1)
    if n == 0:
        return np.full(I.shape, -1, np.int64)
    at = np.minimum(np.searchsorted(sorted_ids, I), n - 1)
    found = (sorted_ids[at] == I) & (I != -1)
    return np.where(found, at if order is None else order[at], -1)
