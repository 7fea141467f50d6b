"""What ``search`` means: one definition for every storage, every option and every path.

For each query, over its candidates (every stored code; with IVF storage the codes in the
lists it probes; with a selector only the ids the selector keeps):

1. the shortlist: the K candidates nearest by (Hamming distance between codes, id), a total
   order, so the answer does not depend on how the codes are laid out;
2. with ``scoring="asymmetric"`` (the default of ``task="neighbors"``), the k of the
   shortlist nearest by (weighted distance, id), K = ``shortlist_size(k, ntotal)`` (a
   search's ``shortlist`` option sets it: fewer is faster, more finds more); with
   ``scoring="hamming"`` the shortlist itself, K = k, by (Hamming distance, id).
   With ``length_byte`` (``_lengths.py``) the weighted distance gives way to the estimated
   squared L2 distance to the vector the code decodes to (``estimates``).

D is float32 (nq, k), the weighted, estimated or Hamming distances, ascending; I int64
(nq, k); where fewer than k candidates exist, I = -1 and D = ``MISSING_DISTANCE``, as in
faiss. Hamming distances are between the codes' bits (never the length byte).

The index (``BioHashIndex.search``), its exact re-ranking (``BioHashIndexRefine``), the
centring check and the Dask shards all search through ``search`` or its two halves:
``shortlist`` gives a query's K best by (Hamming distance, id) with their weighted
distances, and ``best`` keeps the k that step 2 keeps. Shortlists of disjoint parts of the
data merge exactly (``merge_shortlists``): the K best of their union are the K best of the
whole, so a sharded index answers as one index holding every vector.

``range_search``: every candidate at Hamming distance < radius, each query's results in
(distance, id) order.

One exception keeps old files searching as they did: IVF storage loaded from a file of
format version 1 or 2 (``IVFCodeStorage.faiss_order``) is searched by faiss's own
``IndexBinaryIVF``, in Hamming distance with ties in faiss's scan order, without selectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numba
import numpy as np

from ._faiss_compat import selected_ids
from ._inverted_kernels import inverted_search
from ._encoding_kernels import threshold_z
from ._lengths import LENGTH_BITS, byte_lengths
from ._search_kernels import (MISSING_DISTANCE, bytes_at, query_codes, range_matches, searches,
                              searches_parallel,
                              shortlists, shortlists_parallel, weighted_distances,
                              weighted_distances_parallel)
from ._storage import pad_codes
from ._threads import SMALL_CALL_ROWS, numba_parallel

SHORTLIST = 8      # Hamming candidates per result re-ranked by weighted distance ...
MIN_SHORTLIST = 64  # ... and at least this many (benchmarks/ann_text.py)
MISSING_HAMMING = np.iinfo(np.int32).max
# the kernels spread over numba's threads for SMALL_CALL_ROWS queries or more, when the
# call scans at least PARALLEL_WORK bytes of codes (a few milliseconds on one thread): below
# that, waiting for a second thread costs more than it saves on a busy machine
PARALLEL_WORK = 1 << 24


@dataclass(frozen=True)
class Queries:
    """Encoded queries: what search needs of float32 (nq, d) vectors x.

    codes: uint8 (nq, code_size); with asymmetric scoring, c float32 (nq, m), the unit
    inputs less each query's threshold, and scale float32 (nq,), mean |c| per query
    (``encode_queries``); both None with Hamming scoring. With a length byte, terms float64
    (nq, 3) of the distance estimate (``estimates``) and the model's float32 length levels;
    else both None.
    """
    x: np.ndarray
    codes: np.ndarray
    c: np.ndarray | None = None
    scale: np.ndarray | None = None
    terms: np.ndarray | None = None
    levels: np.ndarray | None = None

    @property
    def asymmetric(self) -> bool:
        return self.c is not None

    def __len__(self) -> int:
        return len(self.codes)


def shortlist_size(k: int, ntotal: int, candidates: int | None = None) -> int:
    """Hamming candidates re-ranked for k results: ``candidates`` (None: SHORTLIST k, at
    least MIN_SHORTLIST), at most ntotal, and never fewer than k."""
    if candidates is None:
        candidates = max(MIN_SHORTLIST, SHORTLIST * k)
    return max(k, min(ntotal, candidates))


def encode_queries(model, x: np.ndarray) -> Queries:
    """The ``Queries`` of validated float32 (nq, d) x for a trained ``BioHashModel``,
    scored as its ``scoring`` hyperparameter says. With asymmetric scoring, c is the unit
    inputs less each query's threshold (midway between its h-th and (h+1)-th largest, h =
    hash_length) and scale the mean |c| per query (> 0; a constant row has D = 0)."""
    prm = model.params
    if prm.scoring != "asymmetric":
        return Queries(x, model.encode(x))
    acts, bias = model.inputs(x)
    codes, c, scale = query_codes(acts, _bias_arg(bias), prm.hash_length,
                                  threshold_z(prm.hash_length, prm.n_hidden), prm.code_size, True)
    if not prm.length_byte:
        return Queries(x, codes, c, scale)
    return Queries(x, codes, c, scale, _estimate_terms(model, x, c, scale),
                   model.length_levels_)


def _estimate_terms(model, x: np.ndarray, c: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float64 (nq, 3): (|q - mean|^2, A, B) of each query q, such that |q - mean| cos =
    A - B W for a code of weighted distance W (``estimates``)."""
    prm = model.params
    k, m = prm.hash_length, prm.n_hidden
    q = x.astype(np.float64) - model.mean_
    qq = np.einsum("ij,ij->i", q, q)
    c64 = c.astype(np.float64)
    norm = np.sqrt(k * (m - k) / m) * np.linalg.norm(c64, axis=1)   # |b - k / m| |c|
    per_w = np.divide(np.sqrt(qq), norm, out=np.zeros_like(norm), where=norm > 0)
    A = per_w * (np.where(c64 > 0, c64, 0).sum(1) - k / m * c64.sum(1))
    return np.stack([qq, A, per_w * scale], axis=1)


def estimates(terms: np.ndarray, W: np.ndarray, s: np.ndarray) -> np.ndarray:
    """float32 (nq, K): estimated squared L2 distances of the queries (float64 (nq, 3)
    ``terms``) to the candidates of weighted distances W float32 (nq, K) and lengths s
    float64 (nq, K) (their length bytes): |q - mean|^2 + s^2 - 2 s |q - mean| cos, the
    squared distance to a point at s from the mean at the angle whose cosine is that
    between the code's bits b (k of m set) less k / m and the query's unit inputs less its
    threshold, c (m,): cos = (b - k / m) . c / (|b - k / m| |c|), in [-1, 1], so the
    estimate is at least (|q - mean| - s)^2.

    (b - k / m) . c is sum_(b_j = 1) c_j - k / m sum_j c_j = P - W scale - k / m sum_j c_j,
    P the sum of the positive c_j: a linear function of W (``_estimate_terms``). With
    orthonormal units (m <= d with the default projection), (b - k / m) . c / |b - k / m|
    is (q - mean) . u, u the code's decoded direction (``BioHashModel.decode``); dividing by
    |c| rather than |q - mean| keeps the cosine in [-1, 1] where units are not orthonormal
    (m > d), and measured as good or better there (docs/learned-codes.md).
    """
    qq, A, B = (terms[:, j:j + 1] for j in range(3))
    with np.errstate(invalid="ignore"):
        D = qq + s * s - 2 * s * (A - B * W)
    return np.where(np.isinf(W), np.inf, np.maximum(D, 0)).astype(np.float32)


def allowed_ids(sel, storage) -> np.ndarray | None:
    """Sorted int64 ids of ``storage`` that the ``faiss.IDSelector`` sel keeps (None: all)."""
    if sel is None:
        return None
    return np.sort(selected_ids(sel, storage.ids()))


# ---------------------------------------------------------------------- k nearest
def search(model, storage, xq: np.ndarray, k: int, *, nprobe: int | None = None,
           max_codes: int = 0, sel=None, candidates: int | None = None):
    """D float32 (nq, k), I int64 (nq, k): the k nearest stored vectors of validated float32
    (nq, d) queries, as the module docstring defines them.

    model: a trained ``BioHashModel``; storage: its code storage; nprobe: lists probed per
    query (IVF storage; None: the storage's); max_codes: stop probing after the list that
    reaches this many codes (IVF; 0: no limit); sel: a ``faiss.IDSelector`` or None;
    candidates: Hamming candidates re-ranked per query (None: ``shortlist_size``'s default;
    a search's ``shortlist`` option).
    """
    if storage.faiss_order:
        return _faiss_search(model, storage, xq, k, nprobe, max_codes, sel)
    asymmetric = model.params.scoring == "asymmetric"
    K = shortlist_size(k, storage.ntotal, candidates) if asymmetric else k
    allowed = allowed_ids(sel, storage)
    queries = encode_queries(model, xq)
    if storage.kind == "inverted" or queries.terms is not None:
        H, I, W = shortlist(storage, queries, K, nprobe=nprobe, max_codes=max_codes,
                            allowed=allowed)
        return best(H, I, W, k)
    D = np.empty((len(xq), k), np.float32)
    I = np.empty((len(xq), k), np.int64)
    c, scale = (queries.c, queries.scale) if asymmetric else (_NO_C, _NO_SCALE)
    _run(searches, searches_parallel, storage, _query_codes(storage, queries), c, scale,
         storage.probe(queries, nprobe), *storage.list_table(), *_allowed_args(allowed),
         storage.multi_assigned, max_codes, K, D, I)
    return D, I


_NO_C = np.zeros((0, 1), np.float32)   # c and scale of Hamming scoring, for ``searches``
_NO_SCALE = np.zeros(0, np.float32)
_ALL_IDS = np.zeros(0, np.int64)       # ``allowed`` when every id is
_NO_BIAS = np.zeros(0, np.float32)     # bias when the inputs have none to subtract


def _bias_arg(bias: np.ndarray | None) -> np.ndarray:
    return _NO_BIAS if bias is None else bias


def _query_codes(storage, queries: Queries) -> np.ndarray:
    """The queries' codes padded to the stored code size, C-contiguous."""
    return np.ascontiguousarray(pad_codes(queries.codes, storage.code_size))


def _allowed_args(allowed: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """(allowed, filtered) as the kernels take them."""
    return (_ALL_IDS, False) if allowed is None else (allowed, True)


def _faiss_search(model, storage, xq, k, nprobe, max_codes, sel):
    """``search`` of IVF storage with faiss_order: faiss's IndexBinaryIVF.search."""
    if sel is not None:
        raise ValueError("this IVF index searches in faiss's order (it was saved by an "
                         "earlier version), and faiss's IndexBinaryIVF cannot filter with an "
                         "IDSelector: rebuild it (train and add again) to filter")
    params = faiss.SearchParametersIVF(nprobe=storage.nprobe if nprobe is None else nprobe,
                                       max_codes=max_codes)
    D, I = storage.index.search(pad_codes(model.encode(xq), storage.code_size), k,
                                params=params)
    return D.astype(np.float32), I


def shortlist(storage, queries: Queries, K: int, *, nprobe: int | None = None,
              max_codes: int = 0, allowed: np.ndarray | None = None):
    """Each query's K nearest candidates by (Hamming distance, id): H int32, I int64 and,
    with asymmetric scoring, W float32 weighted distances (with a length byte, ``estimates``;
    else None), each (nq, K); past the candidates, H = int32 max, I = -1, W = +inf.
    allowed: sorted int64 ids, the only candidates (None: all)."""
    qcodes = _query_codes(storage, queries)
    allowed, filtered = _allowed_args(allowed)
    code_addr, id_addr, sizes = storage.list_table()
    if storage.kind == "inverted":
        H, L = _inverted_shortlists(storage, qcodes, allowed, filtered, K)
        I = storage.ids_at(L)
    else:
        H, I, L = _run(shortlists, shortlists_parallel, storage, qcodes,
                       storage.probe(queries, nprobe), code_addr, id_addr, sizes, allowed,
                       filtered, storage.multi_assigned, max_codes, K)
    if not queries.asymmetric:
        return H, I, None
    W = _run(weighted_distances, weighted_distances_parallel, storage, queries.c,
             queries.scale, code_addr, storage.code_size, L)
    if queries.terms is None:
        return H, I, W
    s = byte_lengths(bytes_at(code_addr, storage.code_size, L, queries.codes.shape[1] - 1),
                     queries.levels)
    return H, I, estimates(queries.terms, W, s)


def _run(kernel, parallel_kernel, storage, queries: np.ndarray, *args):
    """``kernel(queries, *args)`` on the calling thread, or its parallel twin over numba's
    threads for a call large enough (PARALLEL_WORK) to scan ``storage``."""
    if len(queries) < SMALL_CALL_ROWS or (
            len(queries) * storage.ntotal * storage.code_size < PARALLEL_WORK):
        return kernel(queries, *args)
    threads = numba.get_num_threads()
    if threads == 1:
        return kernel(queries, *args)
    with numba_parallel():
        return parallel_kernel(queries, *args, threads)


def _inverted_shortlists(storage, qcodes, allowed, filtered, K):
    """(H int32, positions int64), each (nq, K), of inverted storage, by (distance, id)."""
    ptr, pos, pop, rank, by_rank, by_pop = storage.posting_lists()
    mask = np.isin(storage.ids(), allowed) if filtered else np.zeros(0, np.bool_)
    with numba_parallel():
        return inverted_search(qcodes, ptr, pos, pop, rank, by_rank, by_pop, mask, filtered, K,
                               numba.get_num_threads())


def best(H: np.ndarray, I: np.ndarray, W: np.ndarray | None, k: int):
    """D float32 (nq, k) and I int64 (nq, k) from shortlists in (Hamming distance, id) order
    (``shortlist``): the first k, or with weighted distances W the k best by (W, id)."""
    if W is None:
        D, I = H[:, :k].astype(np.float32), I[:, :k]
    else:
        order = np.lexsort((_id_key(I), W), axis=1)[:, :k]
        D, I = np.take_along_axis(W, order, 1), np.take_along_axis(I, order, 1)
    D[I == -1] = MISSING_DISTANCE
    return D, I


def merge_shortlists(parts: list[tuple], K: int):
    """The shortlist (H, I, W) of the union of disjoint parts, from each part's own
    (``shortlist`` with the same K): the K best of them all by (Hamming distance, id)."""
    H, I = (np.concatenate([p[j] for p in parts], axis=1) for j in (0, 1))
    order = np.lexsort((_id_key(I), H), axis=1)[:, :K]
    W = None if parts[0][2] is None else np.concatenate([p[2] for p in parts], axis=1)
    return tuple(None if a is None else np.take_along_axis(a, order, 1) for a in (H, I, W))


def _id_key(I: np.ndarray) -> np.ndarray:
    """Ids as a sort key that puts missing results (-1; stored ids may be other negative
    numbers) last."""
    return np.where(I == -1, np.iinfo(np.int64).max, I)


# ---------------------------------------------------------------------- range search
def range_search(model, storage, xq: np.ndarray, radius: int, *, nprobe: int | None = None):
    """lims int64 (nq + 1,), D float32, I int64: for each validated float32 (nq, d) query,
    the candidates at Hamming distance < radius (an int), in (distance, id) order; query i's
    results are D[lims[i]:lims[i + 1]], I[lims[i]:lims[i + 1]]."""
    queries = Queries(xq, model.encode(xq))
    if model.params.length_byte:   # the bits alone: every code is LENGTH_BITS further
        queries.codes[:, -1] = 0
        lims, H, I = ranges(storage, queries, radius + LENGTH_BITS, nprobe=nprobe)
        return lims, (H - LENGTH_BITS).astype(np.float32), I
    if storage.faiss_order:   # faiss's IndexBinaryIVF: its own order
        lims, H, I = storage.index.range_search(pad_codes(queries.codes, storage.code_size),
                                                radius)
    else:
        lims, H, I = ranges(storage, queries, radius, nprobe=nprobe)
    return lims, H.astype(np.float32), I


def ranges(storage, queries: Queries, radius: int, *, nprobe: int | None = None):
    """lims int64 (nq + 1,), H int32, I int64: ``range_search`` for encoded queries."""
    code_addr, id_addr, sizes = storage.list_table()
    found = range_matches(pad_codes(queries.codes, storage.code_size),
                          storage.probe(queries, nprobe), code_addr, id_addr, sizes, radius)
    return sort_ranges([found])


def sort_ranges(parts: list[tuple]):
    """One range result (lims, D, I), each query's results in (distance, id) order, each id
    once, from the results (lims, D, I) of the same queries over parts of the data (or over
    lists that may share ids)."""
    q = np.concatenate([np.repeat(np.arange(len(lims) - 1), np.diff(lims))
                        for lims, _, _ in parts])
    D = np.concatenate([p[1] for p in parts])
    I = np.concatenate([p[2] for p in parts])
    order = np.lexsort((I, D, q))
    q, D, I = q[order], D[order], I[order]
    first = np.ones(len(I), bool)   # a repeated id has the same distance: right after
    first[1:] = (q[1:] != q[:-1]) | (I[1:] != I[:-1])
    q, D, I = q[first], D[first], I[first]
    lims = np.zeros(len(parts[0][0]), np.int64)
    np.cumsum(np.bincount(q, minlength=len(lims) - 1), out=lims[1:])
    return lims, D, I
