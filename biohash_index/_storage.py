"""Code storage: packed binary codes with stable int64 ids in a faiss binary index.

Three kinds, chosen by ``BioHashIndex(storage=...)``:
- ``FlatCodeStorage``: every code is a candidate (``IndexBinaryFlat``), exact.
- ``IVFCodeStorage``: ``IndexBinaryIVF``, whose ``nlist`` inverted lists group the codes;
  a query's candidates are the codes of the ``nprobe`` lists it probes; approximate, faster
  on large collections.
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

    def __init__(self, nbits: int, index: faiss.IndexBinary | None = None):
        self.nbits = nbits
        if index is None:
            index = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(nbits))
        self.index = index
        self.id_set = IdSet(self.ids())
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

    def train(self, codes: np.ndarray) -> None:
        """Nothing to learn for exhaustive search."""

    def ids(self) -> np.ndarray:
        """int64 (ntotal,) ids in storage order (a copy)."""
        return self._id_view().copy()

    def codes(self) -> np.ndarray:
        """uint8 (ntotal, code_size) codes in storage order (a copy)."""
        return self.code_view().copy()

    def add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        """Store uint8 (n, c) codes under int64 (n,) ids, distinct and new."""
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
        codes, ids = self.code_view(), self._id_view()
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

    def _id_view(self) -> np.ndarray:
        """int64 (ntotal,): the stored ids in storage order, without a copy (valid until the
        next add or removal)."""
        if self.ntotal == 0:
            return np.zeros(0, np.int64)
        return faiss.rev_swig_ptr(self.index.id_map.data(), self.ntotal)

    def ids_at(self, pos: np.ndarray) -> np.ndarray:
        """int64 ids at storage positions ``pos`` (any shape), -1 where pos is -1."""
        ids = self._id_view()
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
    """Codes in ``faiss.IndexBinaryIVF``: ``nlist`` clusters learned from training codes,
    ``nprobe`` of them probed per query (the lists whose centroids are nearest to the
    query's code). IVF keeps the int64 ids itself; its lists know ids, not positions.

    faiss_order: searched by faiss's own ``IndexBinaryIVF.search`` and ``range_search``
    (Hamming distances, ties in the order faiss scans the lists), as every IVF index was
    before the search order became (distance, id): files of format versions 1 and 2 load
    with it, so they search bit for bit as they did (``_search.py``).
    """

    kind = "ivf"

    def __init__(self, nbits: int, nlist: int, nprobe: int = 1,
                 index: faiss.IndexBinaryIVF | None = None, faiss_order: bool = False):
        if index is None:
            index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(nbits), nbits, nlist)
            index.nprobe = nprobe
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

    def fresh(self) -> "IVFCodeStorage":
        storage = IVFCodeStorage(self.nbits, self.nlist, self.nprobe,
                                 faiss_order=self.faiss_order)
        storage.index.verbose = self.index.verbose   # faiss's clustering report, if asked for
        return storage

    def train(self, codes: np.ndarray) -> None:
        """Learn the nlist cluster centroids from uint8 (n, code_size) codes, n >= nlist."""
        if len(codes) < self.min_train:
            raise ValueError(f"IVF storage needs at least nlist={self.nlist} training vectors, "
                             f"got {len(codes)}")
        self.index.train(pad_codes(codes, self.code_size))

    def _make_table(self):
        lists = self.index.invlists
        sizes = np.array([lists.list_size(lst) for lst in range(self.nlist)], np.int64)
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
        return [get_invlist(self.index.invlists, lst) for lst in range(self.nlist)]

    def ids(self) -> np.ndarray:
        """int64 (ntotal,) ids, list by list (a copy)."""
        return np.concatenate([ids for ids, _ in self._invlist_contents()])

    def codes(self) -> np.ndarray:
        """uint8 (ntotal, code_size) codes, list by list (a copy)."""
        return np.concatenate([codes for _, codes in self._invlist_contents()])


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

    def add(self, codes: np.ndarray, ids: np.ndarray) -> None:
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
            by_rank = np.argsort(self._id_view(), kind="stable").astype(np.int32)
            rank = np.empty_like(by_rank)
            rank[by_rank] = np.arange(len(by_rank), dtype=np.int32)
            self._postings = (ptr, pos, pop, rank, by_rank, np.lexsort((rank, pop)))
        return self._postings


def storage_from_faiss(index: faiss.IndexBinary, kind: str = "flat",
                       faiss_order: bool = False) -> FlatCodeStorage:
    """Wrap a faiss binary index (as ``faiss.read_index_binary`` returns it) in its storage;
    ``kind`` "inverted" puts posting lists over a flat index; faiss_order: an IVF index
    searched in faiss's own order (``IVFCodeStorage``)."""
    if isinstance(index, faiss.IndexBinaryIDMap) and isinstance(  # IDMap2 is one too
            faiss.downcast_IndexBinary(index.index), faiss.IndexBinaryFlat):
        if kind == "inverted":
            return InvertedCodeStorage(index.d, index)
        return FlatCodeStorage(index.d, index)
    if isinstance(index, faiss.IndexBinaryIVF):
        return IVFCodeStorage(index.d, index.nlist, index.nprobe, index, faiss_order)
    raise ValueError(f"unsupported faiss binary index type {type(index).__name__}")
