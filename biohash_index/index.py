"""``BioHashIndex``: a trainable binary-hash index with the API of ``faiss.IndexLSH``.

Data flows one way: raw vectors -> validated float32 (``validation``) -> codes
(``BioHashModel.encode``) -> storage (``FlatCodeStorage``). Distances are Hamming
distances between m-bit codes with k ones each, so they are even numbers in [0, 2k].
"""
from __future__ import annotations

import faiss
import numpy as np

from .model import BioHashModel, BioHashParams
from .storage import FlatCodeStorage, IVFCodeStorage, storage_from_faiss
from .validation import check_ids, check_positive_int, check_real, check_vectors

DEFAULT_ACTIVITY = 0.05
STORAGES = ("flat", "ivf")


def n_hidden_for(hash_length: int, activity: float) -> int:
    """m = round(k / activity): the number of hidden units for a hash length and activity."""
    return max(hash_length + 1, int(round(hash_length / activity)))


def make_storage(kind: str, nbits: int, nlist: int, nprobe: int):
    """An empty code storage of the given kind for nbits-bit codes."""
    if kind == "flat":
        return FlatCodeStorage(nbits)
    if kind == "ivf":
        return IVFCodeStorage(nbits, check_positive_int(nlist, "nlist"),
                              check_positive_int(nprobe, "nprobe"))
    raise ValueError(f"storage must be one of {STORAGES}, got {kind!r}")


class BioHashIndex:
    """Index of m-bit sparse codes learned with BioHash; a drop-in for ``faiss.IndexLSH``.

    d: input dimension; hash_length: k, active units per code (the ``nbits`` of IndexLSH);
    n_hidden: m, hidden units (default ``round(k / activity)``); storage: "flat" (exact
    Hamming search) or "ivf" (``IndexBinaryIVF`` with ``nlist`` clusters learned in ``train``,
    ``nprobe`` visited per query); the other keywords are the learning-rule hyperparameters
    of ``BioHashParams``.
    """

    def __init__(self, d: int, hash_length: int, n_hidden: int | None = None,
                 activity: float = DEFAULT_ACTIVITY, *, p: float = 1.5, delta: float = 0.0,
                 rank: int = 2, epochs: int | None = None, batch_size: int = 100,
                 learning_rate: float = 0.02, seed: int = 0, init: str = "sample",
                 center: bool = False, storage: str = "flat", nlist: int = 256, nprobe: int = 8):
        hash_length = check_positive_int(hash_length, "hash_length")
        if n_hidden is None:
            check_real(activity, "activity", low=0.0, high=1.0, low_inclusive=False)
            n_hidden = n_hidden_for(hash_length, activity)
        params = BioHashParams(d=d, hash_length=hash_length, n_hidden=n_hidden, p=p,
                               delta=delta, rank=rank, epochs=epochs, batch_size=batch_size,
                               learning_rate=learning_rate, seed=seed, init=init, center=center)
        self.model = BioHashModel(params)
        self.storage = make_storage(storage, 8 * params.code_size, nlist, nprobe)
        self._next_id = 0

    # ---------------------------------------------------------------- properties
    @property
    def params(self) -> BioHashParams:
        return self.model.params

    @property
    def d(self) -> int:
        return self.params.d

    @property
    def hash_length(self) -> int:
        return self.params.hash_length

    @property
    def n_hidden(self) -> int:
        return self.params.n_hidden

    @property
    def code_size(self) -> int:
        return self.params.code_size

    @property
    def ntotal(self) -> int:
        return self.storage.ntotal

    @property
    def is_trained(self) -> bool:
        return self.model.is_trained and self.storage.is_trained

    @property
    def nprobe(self) -> int:
        """IVF clusters visited per query (IVF storage only)."""
        self._require_ivf("nprobe")
        return self.storage.nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._require_ivf("nprobe")
        self.storage.nprobe = check_positive_int(value, "nprobe")

    def _require_ivf(self, what: str) -> None:
        if self.storage.kind != "ivf":
            raise AttributeError(f"{what} exists only for storage='ivf', this index is "
                                 f"{self.storage.kind!r}")

    def __repr__(self) -> str:
        return (f"BioHashIndex(d={self.d}, hash_length={self.hash_length}, "
                f"n_hidden={self.n_hidden}, ntotal={self.ntotal}, is_trained={self.is_trained})")

    # ---------------------------------------------------------------- training and adding
    def train(self, x) -> None:
        """Learn the model from float (n, d) training vectors; n >= 1."""
        x = check_vectors(x, self.d, "x", allow_empty=False)
        self.model.train(x)
        if not self.storage.is_trained:
            self.storage.train(self.model.encode(x))

    def sa_encode(self, x) -> np.ndarray:
        """uint8 (n, code_size) codes of float (n, d) vectors."""
        self._require_trained("sa_encode")
        return self.model.encode(check_vectors(x, self.d, "x"))

    def add(self, x) -> None:
        """Add float (n, d) vectors with ids next_id .. next_id + n - 1.

        next_id is one more than the largest id ever added (0 for a new or reset index), so
        it equals ntotal for an index filled only through ``add``, as in faiss.
        """
        self._require_trained("add")
        x = check_vectors(x, self.d, "x")
        self._add_codes(self.model.encode(x), np.arange(self._next_id, self._next_id + len(x),
                                                        dtype=np.int64))

    def add_with_ids(self, x, ids) -> None:
        """Add float (n, d) vectors under int64 (n,) ids, which must be new and distinct."""
        self._require_trained("add_with_ids")
        x = check_vectors(x, self.d, "x")
        ids = check_ids(ids, len(x))
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be distinct; got duplicates within the batch")
        clash = ids[np.isin(ids, self.storage.ids())]
        if len(clash):
            raise ValueError(f"ids already in the index: {clash[:5].tolist()}"
                             " (remove them first to replace them)")
        self._add_codes(self.model.encode(x), ids)

    def _add_codes(self, codes: np.ndarray, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.storage.add(codes, ids)
        self._next_id = max(self._next_id, int(ids.max()) + 1)

    # ---------------------------------------------------------------- searching
    def search(self, xq, k: int):
        """k nearest stored vectors by Hamming distance of their codes.

        Returns D float32 (nq, k) distances and I int64 (nq, k) ids; where fewer than k
        vectors are stored, I is -1 and D is float32(2**31 - 1), as in faiss.
        """
        self._require_trained("search")
        k = check_positive_int(k, "k")
        xq = check_vectors(xq, self.d, "xq")
        D, I = self.storage.search(self.model.encode(xq), k)
        return D.astype(np.float32), I

    def range_search(self, xq, radius: float):
        """All stored vectors at Hamming distance < radius, in faiss's layout.

        Returns lims (nq + 1,), D float32 and I int64; the results of query i are
        D[lims[i]:lims[i+1]], I[lims[i]:lims[i+1]].
        """
        self._require_trained("range_search")
        radius = check_real(radius, "radius", low=0.0)
        xq = check_vectors(xq, self.d, "xq")
        r = int(min(np.ceil(radius), 8 * self.code_size + 1))
        lims, D, I = self.storage.range_search(self.model.encode(xq), r)
        return lims, D.astype(np.float32), I

    # ---------------------------------------------------------------- removing
    def remove_ids(self, ids) -> int:
        """Remove the vectors with these int64 ids; returns how many were removed."""
        ids = np.asarray(ids)
        ids = check_ids(ids, ids.shape[0] if ids.ndim == 1 else -1)
        return self.storage.remove_ids(ids)

    def reset(self) -> None:
        """Remove all stored vectors (the model stays trained)."""
        self.storage.reset()
        self._next_id = 0

    # ---------------------------------------------------------------- pickling
    def __getstate__(self) -> dict:
        """Parameters, learned arrays and the faiss storage as bytes, so the index can be
        pickled and deep-copied (faiss binary indexes themselves cannot)."""
        return {"params": self.params, "mean": self.model.mean_, "weights": self.model.weights_,
                "train_stats": self.model.train_stats_, "next_id": self._next_id,
                "storage": faiss.serialize_index_binary(self.storage.index)}

    def __setstate__(self, state: dict) -> None:
        self.model = BioHashModel(state["params"])
        self.model.mean_, self.model.weights_ = state["mean"], state["weights"]
        self.model.train_stats_ = state["train_stats"]
        self.storage = storage_from_faiss(faiss.deserialize_index_binary(state["storage"]))
        self._next_id = state["next_id"]

    def _require_trained(self, what: str) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{what}() needs a trained index: call train() first")
