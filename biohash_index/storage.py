"""Code storage: packed binary codes with stable int64 ids in a faiss binary index.

Two kinds, chosen by ``BioHashIndex(storage=...)``:
- ``FlatCodeStorage``: exhaustive Hamming search (``IndexBinaryFlat``), exact.
- ``IVFCodeStorage``: ``IndexBinaryIVF``, which searches only the ``nprobe`` of ``nlist``
  clusters nearest to the query; approximate, faster on large collections.
"""
from __future__ import annotations

import faiss
import numpy as np


class FlatCodeStorage:
    """Exhaustive Hamming search over codes in ``faiss.IndexBinaryFlat``.

    Wrapped in ``IndexBinaryIDMap2`` so ids are arbitrary int64 and survive removals.
    """

    kind = "flat"

    def __init__(self, nbits: int, index: faiss.IndexBinary | None = None):
        self.nbits = nbits
        self.index = index or faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(nbits))

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, codes: np.ndarray) -> None:
        """Nothing to learn for exhaustive search."""

    def ids(self) -> np.ndarray:
        """int64 (ntotal,) ids in storage order."""
        return faiss.vector_to_array(self.index.id_map).astype(np.int64, copy=False)

    def codes(self) -> np.ndarray:
        """uint8 (ntotal, code_size) codes in storage order."""
        inner = faiss.downcast_IndexBinary(self.index.index)
        return faiss.vector_to_array(inner.xb).reshape(self.ntotal, inner.code_size)

    def add(self, codes: np.ndarray, ids: np.ndarray) -> None:
        self.index.add_with_ids(codes, ids)

    def search(self, codes: np.ndarray, k: int):
        """int32 (nq, k) Hamming distances and int64 (nq, k) ids; -1 where fewer than k."""
        return self.index.search(codes, k)

    def range_search(self, codes: np.ndarray, radius: int):
        return self.index.range_search(codes, radius)

    def remove_ids(self, ids: np.ndarray) -> int:
        return int(self.index.remove_ids(ids))

    def reset(self) -> None:
        self.index.reset()


class IVFCodeStorage(FlatCodeStorage):
    """Codes in ``faiss.IndexBinaryIVF``: ``nlist`` clusters learned from training codes,
    ``nprobe`` of them visited per query. IVF keeps the int64 ids itself."""

    kind = "ivf"

    def __init__(self, nbits: int, nlist: int, nprobe: int = 1,
                 index: faiss.IndexBinaryIVF | None = None):
        self.nbits = nbits
        if index is None:
            index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(nbits), nbits, nlist)
            index.nprobe = nprobe
        self.index = index

    @property
    def is_trained(self) -> bool:
        return self.index.is_trained

    @property
    def nlist(self) -> int:
        return self.index.nlist

    @property
    def nprobe(self) -> int:
        return self.index.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self.index.nprobe = value

    def train(self, codes: np.ndarray) -> None:
        """Learn the nlist cluster centroids from uint8 (n, code_size) codes, n >= nlist."""
        if len(codes) < self.nlist:
            raise ValueError(f"IVF storage needs at least nlist={self.nlist} training vectors, "
                             f"got {len(codes)}")
        self.index.train(codes)

    def _lists(self):
        invlists = self.index.invlists
        for lst in range(self.nlist):
            n = invlists.list_size(lst)
            if n:
                ids = faiss.rev_swig_ptr(invlists.get_ids(lst), n).copy()
                codes = faiss.rev_swig_ptr(invlists.get_codes(lst), n * invlists.code_size)
                yield ids, codes.reshape(n, invlists.code_size).copy()

    def ids(self) -> np.ndarray:
        parts = [ids for ids, _ in self._lists()]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def codes(self) -> np.ndarray:
        parts = [codes for _, codes in self._lists()]
        return np.concatenate(parts) if parts else np.zeros((0, self.nbits // 8), np.uint8)


def storage_from_faiss(index: faiss.IndexBinary) -> FlatCodeStorage:
    """Wrap a faiss binary index (as ``faiss.read_index_binary`` returns it) in its storage."""
    if isinstance(index, faiss.IndexBinaryIDMap2) and isinstance(
            faiss.downcast_IndexBinary(index.index), faiss.IndexBinaryFlat):
        return FlatCodeStorage(index.d, index)
    if isinstance(index, faiss.IndexBinaryIVF):
        return IVFCodeStorage(index.d, index.nlist, index.nprobe, index)
    raise ValueError(f"unsupported faiss binary index type {type(index).__name__}")
