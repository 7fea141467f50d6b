"""Code storage: packed binary codes with stable int64 ids in a faiss binary index.

Three kinds, chosen by ``BioHashIndex(storage=...)``:
- ``FlatCodeStorage``: every code is a candidate (``IndexBinaryFlat``), exact.
- ``RoutedCodeStorage`` (``storage="ivf"``): the inverted lists of an ``IndexBinaryIVF``,
  one per unit of a ``Router`` (``_router.py``), which lists each vector under its top
  ``assign`` units; a query's candidates are the codes of the ``nprobe`` lists it probes;
  approximate, faster on large collections. ``IVFCodeStorage``, its base, is the IVF storage
  of files of format versions 1 and 2: faiss's binary k-means lists, searched by faiss.
- ``InvertedCodeStorage``: flat storage plus one posting list per hidden unit, so that a
  query reads only the lists of its active units. Exact: the same results as flat.

Storage holds codes; ``_search.py`` searches them. It sees a storage's codes as lists
(``list_table``: addresses in faiss's memory, one list for flat storage, nlist for IVF),
which lists each query probes (``probe``) and, for inverted storage, the posting lists.

Code sizes: faiss has specialised Hamming kernels for codes of 4, 8, 16, 20, 32 and 64 bytes,
2-3x faster per code than the generic one at the sizes just above them; the generic one
costs about as much per byte as the 64-byte kernel from 32 to 64 bytes, so a 64-byte code is
searched no slower than a 41-byte one (``benchmarks/bench_search.py``, table 2). Codes are
therefore stored zero-padded to the next fast size, except from 33 to 41 bytes, where that
would cost memory and gain no speed (``padded_code_size``); zero bytes change no distance.
"""
from __future__ import annotations

import faiss
import numpy as np
from faiss.contrib.inspect_tools import get_invlist

from ._id_set import IdSet
from ._inverted_kernels import build_postings

FAST_CODE_SIZES = (4, 8, 16, 20, 32, 64)  # bytes; faiss's specialised HammingComputers
PAD_TO_64_FROM = 42  # bytes; below, the generic kernel is as fast as the 64-byte one


def padded_code_size(code_size: int) -> int:
    """The smallest fast faiss code size >= code_size where padding pays, else code_size."""
    fast = next((c for c in FAST_CODE_SIZES if c >= code_size), code_size)
    return code_size if fast == 64 and code_size < PAD_TO_64_FROM else fast


def pad_codes(codes: np.ndarray, code_size: int) -> np.ndarray:
    """uint8 (n, c) codes zero-padded on the right to (n, code_size), c <= code_size."""
    if codes.shape[1] == code_size:
        return codes
    out = np.zeros((len(codes), code_size), np.uint8)
    out[:, :codes.shape[1]] = codes
    return out


class FlatCodeStorage:
    """Exhaustive Hamming search over codes in ``faiss.IndexBinaryFlat``.

    Wrapped in ``IndexBinaryIDMap`` so ids are arbitrary int64 and survive removals (not
    ``IndexBinaryIDMap2``, whose id -> position hash map costs about 40 bytes per code and
    serves only ``reconstruct``; files with one load all the same);
    ``id_set`` holds the same ids, distinct (a ValueError if ``index`` repeats one), for
    ``add_with_ids`` to check new ids against (``_id_set.py``: 8 bytes per stored code).
    nbits: bits of the stored codes, after padding to ``padded_code_size``; narrower codes
    given to ``add``/``search`` are zero-padded.
    """

    kind = "flat"
    multi_assigned = False  # whether an id may be in several lists (search keeps it once)
    faiss_order = False     # searched by faiss itself (old IVF files: IVFCodeStorage)
    routes = False          # whether add and train need the float vectors (a router)

    def __init__(self, nbits: int, index: faiss.IndexBinary | None = None):
        self.nbits = nbits
        if index is None:
            index = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(nbits))
        self.index = index
        self.id_set = IdSet(self.id_view())
        self._table = None  # list_table(), None when stale

    @property
    def code_size(self) -> int:
        """Bytes per stored code (padding included)."""
        return self.nbits // 8

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def is_trained(self) -> bool:
        return True

    @property
    def min_train(self) -> int:
        """Training vectors ``train`` needs (one: the model needs one; flat storage none)."""
        return 1

    def fresh(self) -> "FlatCodeStorage":
        """A new, empty, untrained storage of the same kind and parameters."""
        return type(self)(self.nbits)

    def train(self, x: np.ndarray, mean: np.ndarray, seed: int) -> None:
        """Nothing to learn for exhaustive search."""

    def ids(self) -> np.ndarray:
        """int64 (ntotal,) ids in storage order (a copy)."""
        return self.id_view().copy()

    def codes(self) -> np.ndarray:
        """uint8 (ntotal, code_size) codes in storage order (a copy)."""
        return self.code_view().copy()

    def add(self, codes: np.ndarray, ids: np.ndarray, x: np.ndarray | None = None) -> None:
        """Store uint8 (n, c) codes under int64 (n,) ids, distinct and new; x: their float32
        (n, d) vectors, for storage that ``routes``."""
        self._table = None
        self.index.add_with_ids(pad_codes(codes, self.code_size), ids)
        self.id_set.add(ids)

    def list_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The codes as lists for ``_search_kernels``: code addresses, id addresses and sizes,
        int64 (n_lists,) each; valid until the next change (add, removal, reset)."""
        if self._table is None:
            self._table = self._make_table()
        return self._table

    def _make_table(self):
        codes, ids = self.code_view(), self.id_view()
        return tuple(np.array([a], np.int64) for a in (
            codes.ctypes.data, ids.ctypes.data, self.ntotal))

    def probe(self, queries, nprobe: int | None) -> np.ndarray:
        """int64 (nq, 1): every query scans the one list of flat storage."""
        return np.zeros((len(queries.codes), 1), np.int64)

    def code_view(self) -> np.ndarray:
        """uint8 (ntotal, code_size): the stored codes in storage order, without a copy
        (valid until the next add or removal)."""
        inner = faiss.downcast_IndexBinary(self.index.index)
        if self.ntotal == 0:
            return np.zeros((0, self.code_size), np.uint8)
        return faiss.rev_swig_ptr(inner.xb.data(), self.ntotal * self.code_size).reshape(
            self.ntotal, self.code_size)

    def id_view(self) -> np.ndarray:
        """int64 (ntotal,): the stored ids in storage order, without a copy (valid until the
        next add or removal; read only)."""
        if self.ntotal == 0:
            return np.zeros(0, np.int64)
        return faiss.rev_swig_ptr(self.index.id_map.data(), self.ntotal)

    def ids_at(self, pos: np.ndarray) -> np.ndarray:
        """int64 ids at storage positions ``pos`` (any shape), -1 where pos is -1."""
        ids = self.id_view()
        if len(ids) == 0:
            return np.full(pos.shape, -1, np.int64)
        return np.where(pos < 0, np.int64(-1), ids[np.maximum(pos, 0)])

    def remove_ids(self, ids: np.ndarray) -> int:
        self._table = None
        removed = int(self.index.remove_ids(ids))
        self.id_set.remove(ids)
        return removed

    def reset(self) -> None:
        self._table = None
        self.index.reset()
        self.id_set.clear()


class IVFCodeStorage(FlatCodeStorage):
    """Codes in ``faiss.IndexBinaryIVF`` with faiss's binary k-means lists, as IVF indexes of
    format versions 1 and 2 hold them (loaded, never trained anew: training an index makes a
    ``RoutedCodeStorage`` with the same nlist and nprobe). IVF keeps the int64 ids itself;
    its lists know ids, not positions.

    faiss_order: searched by faiss's own ``IndexBinaryIVF.search`` and ``range_search``
    (Hamming distances, ties in the order faiss scans the lists), as every IVF index was
    before the search order became (distance, id), so such files search bit for bit as they
    did (``_search.py``).
    """

    kind = "ivf"

    def __init__(self, nbits: int, index: faiss.IndexBinaryIVF, faiss_order: bool = True):
        super().__init__(nbits, index)
        self.faiss_order = faiss_order

    @property
    def is_trained(self) -> bool:
        return self.index.is_trained

    @property
    def nlist(self) -> int:
        return self.index.nlist

    @property
    def min_train(self) -> int:
        return self.nlist

    @property
    def nprobe(self) -> int:
        return self.index.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = value

    def fresh(self):
        """Not trained anew: ``_index.fresh_storage`` makes a routed storage instead."""
        raise TypeError("IVF storage of a format 1-2 file is not trained anew")

    def _make_table(self):
        lists = self.index.invlists
        sizes = np.array([lists.list_size(lst) for lst in range(self.index.nlist)], np.int64)
        code_addr = np.array([int(lists.get_codes(lst)) if n else 0
                              for lst, n in enumerate(sizes)], np.int64)
        id_addr = np.array([int(lists.get_ids(lst)) if n else 0
                            for lst, n in enumerate(sizes)], np.int64)
        return code_addr, id_addr, sizes

    def probe(self, queries, nprobe: int | None) -> np.ndarray:
        """int64 (nq, nprobe): the lists whose centroids are nearest to each query's code,
        nearest first (``nprobe`` None: the storage's)."""
        nprobe = min(self.nprobe if nprobe is None else nprobe, self.nlist)
        _, lists = self.index.quantizer.search(pad_codes(queries.codes, self.code_size), nprobe)
        return lists

    def code_view(self) -> np.ndarray:
        raise AttributeError("IVF storage holds its codes in lists: use codes()")

    def _invlist_contents(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(ids int64 (n_l,), codes uint8 (n_l, code_size)) of each inverted list l, copies
        (faiss's ``get_invlist``)."""
        return [get_invlist(self.index.invlists, lst) for lst in range(self.index.nlist)]

    def ids(self) -> np.ndarray:
        """int64 (ntotal,) ids, list by list (a copy)."""
        return np.concatenate([ids for ids, _ in self._invlist_contents()])

    def id_view(self) -> np.ndarray:
        """int64 (ntotal,) ids as ``ids`` gives them (a copy: IVF holds them in lists)."""
        return self.ids()

    def codes(self) -> np.ndarray:
        """uint8 (ntotal, code_size) codes, list by list (a copy)."""
        return np.concatenate([codes for _, codes in self._invlist_contents()])


class RoutedCodeStorage(IVFCodeStorage):
    """IVF storage routed by a ``Router`` (``_router.py``): list l of an ``IndexBinaryIVF``
    holds the codes of the vectors whose top ``assign`` units include unit l, filled through
    ``add_core`` with the router's choice; a query probes its top ``nprobe`` units. faiss's
    own quantizer stays empty (faiss never searches these lists; ``_search.py`` does).

    With assign 2 a vector is in two lists (``multi_assigned``): ``ntotal``, ``ids`` and
    ``codes`` count it once, search keeps it once, ``remove_ids`` removes every copy.
    Before training the faiss index is a placeholder with the requested nlist (or 1).
    """

    faiss_order = False
    routes = True

    def __init__(self, nbits: int, router, index: faiss.IndexBinaryIVF | None = None):
        if index is None:
            nlist = router.n_units if router.is_trained else router.nlist or 1
            index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(nbits), nbits, nlist)
            index.is_trained = router.is_trained
        self.router = router
        super().__init__(nbits, index, faiss_order=False)

    @property
    def multi_assigned(self) -> bool:
        return self.router.assign > 1

    @property
    def is_trained(self) -> bool:
        return self.router.is_trained

    @property
    def nlist(self) -> int | None:
        """Lists: the trained router's units, else the requested number (None: auto)."""
        return self.router.n_units if self.is_trained else self.router.nlist

    @property
    def min_train(self) -> int:
        return self.router.min_train

    @property
    def nprobe(self) -> int | None:
        """Lists a query probes: the set nprobe, else the learned one (None untrained)."""
        return self.router.probes if self.is_trained else self.router.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.router.nprobe = value

    def fresh(self) -> "RoutedCodeStorage":
        storage = RoutedCodeStorage(self.nbits, self.router.fresh())
        storage.index.verbose = self.index.verbose   # the router's report, if asked for
        return storage

    def train(self, x: np.ndarray, mean: np.ndarray, seed: int) -> None:
        """Learn the router from float32 (n, d) training vectors, centred by the model's
        float32 (d,) mean; then the faiss index has one list per unit."""
        router = self.router.fresh().train(x, mean, seed, verbose=self.index.verbose)
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(self.nbits), self.nbits,
                                     router.n_units)
        index.is_trained = True
        self.router, self.index = router, index
        self._table = None

    def add(self, codes: np.ndarray, ids: np.ndarray, x: np.ndarray | None = None) -> None:
        """Store uint8 (n, c) codes under int64 (n,) new ids in the lists the router picks
        for their float32 (n, d) vectors x."""
        self._table = None
        codes = np.ascontiguousarray(pad_codes(codes, self.code_size))
        ids = np.ascontiguousarray(ids, np.int64)
        ntotal = self.index.ntotal
        for lists in self.router.lists_of(x).T:
            lists = np.ascontiguousarray(lists)
            self.index.add_core(len(ids), faiss.swig_ptr(codes), faiss.swig_ptr(ids),
                                faiss.swig_ptr(lists))
        self.index.ntotal = ntotal + len(ids)   # distinct vectors, not copies
        self.id_set.add(ids)

    def probe(self, queries, nprobe: int | None) -> np.ndarray:
        """int64 (nq, nprobe): the lists of each query's most active units, most active
        first (``nprobe`` None: the storage's)."""
        return self.router.probe(queries.x, nprobe)

    def remove_ids(self, ids: np.ndarray) -> int:
        self._table = None
        removed = int(self.id_set.isin(np.unique(ids)).sum()) if len(ids) else 0
        ntotal = self.index.ntotal
        self.index.remove_ids(faiss.IDSelectorBatch(ids))   # every copy
        self.index.ntotal = ntotal - removed
        self.id_set.remove(ids)
        return removed

    def ids(self) -> np.ndarray:
        """int64 (ntotal,) ids, list by list, each once (a copy)."""
        return self._distinct()[0]

    def codes(self) -> np.ndarray:
        """uint8 (ntotal, code_size) codes, in the order of ``ids`` (a copy)."""
        return self._distinct()[1]

    def _distinct(self) -> tuple[np.ndarray, np.ndarray]:
        contents = self._invlist_contents()
        ids = np.concatenate([i for i, _ in contents])
        codes = np.concatenate([c for _, c in contents])
        if not self.multi_assigned:
            return ids, codes
        _, first = np.unique(ids, return_index=True)
        first.sort()
        return ids[first], codes[first]


class InvertedCodeStorage(FlatCodeStorage):
    """Flat storage plus posting lists: search by overlap of active units.

    The codes and ids live in the same ``IndexBinaryIDMap(IndexBinaryFlat)`` as for flat
    storage (so saving, ``range_search`` and ``remove_ids`` are those of faiss); the posting
    lists are derived from it, rebuilt by the first search after an add or a removal (one
    pass over the codes). A query costs the total length of the posting lists of its set
    bits, about n * h**2 / m entries for codes with h = hash_length of m bits set, instead of
    n * m / 8 bytes. Memory: 4 bytes per set bit per stored code (+ 20 bytes per code) on top
    of the codes; the ids stay in the faiss index alone.
    """

    kind = "inverted"

    def __init__(self, nbits: int, index: faiss.IndexBinary | None = None):
        super().__init__(nbits, index)
        self._postings = None  # posting_lists(), None when stale

    def add(self, codes: np.ndarray, ids: np.ndarray, x: np.ndarray | None = None) -> None:
        super().add(codes, ids)
        self._postings = None

    def remove_ids(self, ids: np.ndarray) -> int:
        self._postings = None
        return super().remove_ids(ids)

    def reset(self) -> None:
        super().reset()
        self._postings = None

    def posting_lists(self):
        """(ptr int64 (nbits + 1,), pos int32, pop int32 (n,), rank int32 (n,), by_rank
        int32 (n,), by_pop int64 (n,)): the codes with bit j set are at storage positions
        pos[ptr[j]:ptr[j + 1]]; pop is each code's popcount, rank the rank of its id among
        the stored ids and by_rank the inverse, by_pop the positions sorted by (popcount,
        id)."""
        if self._postings is None:
            ptr, pos, pop = build_postings(self.code_view(), self.nbits)
            by_rank = np.argsort(self.id_view(), kind="stable").astype(np.int32)
            rank = np.empty_like(by_rank)
            rank[by_rank] = np.arange(len(by_rank), dtype=np.int32)
            self._postings = (ptr, pos, pop, rank, by_rank, np.lexsort((rank, pop)))
        return self._postings


def storage_from_faiss(index: faiss.IndexBinary, kind: str = "flat",
                       faiss_order: bool = False, router=None) -> FlatCodeStorage:
    """Wrap a faiss binary index (as ``faiss.read_index_binary`` returns it) in its storage;
    ``kind`` "inverted" puts posting lists over a flat index; an IVF index is routed by
    ``router`` (``RoutedCodeStorage``) or, with None, searched in faiss's own order with
    faiss_order (``IVFCodeStorage``)."""
    if isinstance(index, faiss.IndexBinaryIDMap) and isinstance(  # IDMap2 is one too
            faiss.downcast_IndexBinary(index.index), faiss.IndexBinaryFlat):
        if kind == "inverted":
            return InvertedCodeStorage(index.d, index)
        return FlatCodeStorage(index.d, index)
    if isinstance(index, faiss.IndexBinaryIVF):
        if router is not None:
            return RoutedCodeStorage(index.d, router, index)
        return IVFCodeStorage(index.d, index, faiss_order)
    raise ValueError(f"unsupported faiss binary index type {type(index).__name__}")
