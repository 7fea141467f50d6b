"""Code storage: packed binary codes with stable int64 ids in a faiss binary index."""
from __future__ import annotations

import faiss
import numpy as np


class FlatCodeStorage:
    """Exhaustive Hamming search over codes in ``faiss.IndexBinaryFlat``.

    Wrapped in ``IndexBinaryIDMap2`` so ids are arbitrary int64 and survive removals.
    """

    kind = "flat"

    def __init__(self, nbits: int):
        self.nbits = nbits
        self.index = faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(nbits))

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

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
