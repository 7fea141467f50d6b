"""``BioHashIndex``: a trainable binary-hash index with the API of ``faiss.IndexLSH``.

Data flows one way: raw vectors -> validated float32 (``_validation``) -> codes
(``BioHashModel.encode``) -> storage (``_storage``). What ``search`` and ``range_search``
return is defined in ``_search.py``: weighted distances (``scoring="asymmetric"``) or
Hamming distances between m-bit codes with k ones each (even numbers in [0, 2k]).
"""
from __future__ import annotations

import functools
import inspect
import logging
import time
import warnings

import faiss
import numpy as np

from ._faiss_compat import (INDEX_LSH_ONLY, NotAFaissIndex, SearchOptions,
                            index_lsh_arguments, result_arrays, search_options, selected_ids,
                            stacklevel_outside)
from ._formats import index_file
from ._formats.index import IndexState, deserialize_state, serialize_state
from ._locking import LockPerInstance, reads, writes
from ._model import (HYPERPARAMETERS, BioHashModel, BioHashParams, SmallTrainingSetWarning,
                     UntrainedIndexWarning, task_params, training_rows_needed)
from ._search import range_search as range_search_storage
from ._search import search as search_storage
from ._router import DEFAULT_ASSIGN, Router
from ._storage import FlatCodeStorage, InvertedCodeStorage, RoutedCodeStorage, padded_code_size
from ._streaming import DEFAULT_BATCH_SIZE, MAX_ROUTER_SAMPLE, add_from, train_from
from ._threads import uses_threads
from ._validation import (MAX_ID, check_codes, check_ids, check_k, check_n_threads,
                          check_new_ids, check_positive_int, check_real, check_vectors, next_ids)

log = logging.getLogger(__name__)
STORAGES = ("flat", "ivf", "inverted")


def with_hyperparameter_keywords(init):
    """Give ``init`` (which takes ``**hyperparameters``) the signature that lists every
    hyperparameter of ``BioHashParams`` as a keyword after ``task``, with its default (None:
    the task's), for ``help``, IDEs and ``inspect.signature``."""
    sig = inspect.signature(init)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    at = [p.name for p in params].index("task") + 1
    params[at:at] = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                          default=None if f.metadata["tasks"] else f.default,
                          annotation=f.type if not f.metadata["tasks"] or "None" in f.type
                          else f"{f.type} | None")
        for f in HYPERPARAMETERS]
    init.__signature__ = sig.replace(parameters=params)
    return init


def next_id_after(next_id: int, ids: np.ndarray) -> int:
    """The id ``add`` gives next once int64 (n,) ids were added where it gave ``next_id``:
    one more than the largest id ever added."""
    return max(next_id, int(ids.max()) + 1) if len(ids) else next_id


def make_storage(kind: str, nbits: int, nlist: int | None = None, nprobe: int | None = None,
                 router: str = "learned", assign: int = DEFAULT_ASSIGN):
    """An empty code storage of the given kind for nbits-bit codes; ivf: routed by an
    untrained ``Router(router, nlist, nprobe, assign)``."""
    if kind == "flat":
        return FlatCodeStorage(nbits)
    if kind == "inverted":
        return InvertedCodeStorage(nbits)
    if kind == "ivf":
        return RoutedCodeStorage(nbits, Router(router, nlist, nprobe, assign))
    raise ValueError(f"storage must be one of {STORAGES}, got {kind!r}")


def fresh_storage(storage):
    """An empty, untrained storage of the same kind and settings; the IVF storage of a file
    of format version 1 or 2 becomes a routed one with its nlist and nprobe."""
    if storage.kind == "ivf" and not storage.routes:
        return make_storage("ivf", storage.nbits, storage.nlist, storage.nprobe)
    return storage.fresh()


def reported(method):
    """When ``self.verbose``, print what the call did and how long it took, as faiss's
    verbose indexes report their work; faiss's IVF storage then prints its clustering too."""
    @functools.wraps(method)
    def run(self, x, *args, **kwargs):
        if not self.verbose:
            return method(self, x, *args, **kwargs)
        self.storage.index.verbose = True
        t = time.perf_counter()
        try:
            out = method(self, x, *args, **kwargs)
        finally:
            self.storage.index.verbose = False
        shape = getattr(x, "shape", ())   # arrays and Arrow tables; paths and lists have none
        what = f"{shape[0]:,} vectors" if shape else f"{type(x).__name__} input"
        print(f"{type(self).__name__}.{method.__name__}: {what} in "
              f"{time.perf_counter() - t:.2f} s; ntotal={self.ntotal}, "
              f"is_trained={self.is_trained}", flush=True)
        return out
    return run


class BioHashIndex(NotAFaissIndex):
    """Index of m-bit codes with k ones (BioHash); a drop-in for ``faiss.IndexLSH``.

    d: input dimension; hash_length: k, active units per code (the ``nbits`` of IndexLSH);
    n_hidden: m, hidden units (default ``round(k / activity)``); task: what the index is
    for, which sets the keywords left at None (``TASKS``: "neighbors", nearest-neighbour
    search, the default; "labels", retrieval by class); storage: "flat" (exact search) or
    "ivf" (approximate: the inverted lists of an ``IndexBinaryIVF``, one per unit of a
    router learned in ``train``, ``_router.py``) or "inverted" (exact, same results as
    "flat", searched through one posting list per hidden unit: faster for sparse codes, see
    _storage.py); IVF only: router, "learned" (Krotov-Hopfield units), "kmeans" (faiss
    k-means of the vectors) or "random"; nlist, its lists (None: 4 sqrt(training rows));
    nprobe, lists a query probes (None: learned in ``train``, the fewest whose lists hold
    0.9 of held-out training rows' exact 10 neighbours); assign, lists each vector is stored in (1 or 2);
    n_threads: threads of the numba kernels, faiss searches and numpy's BLAS products in
    each call (None: their current settings; a call on fewer than 8 rows runs its kernels
    on the calling thread and changes no setting); the other keywords are the learning-rule
    hyperparameters of ``BioHashParams``. IndexLSH's positional flags are accepted and
    ignored: ``BioHashIndex(d, nbits, True, False)`` is ``BioHashIndex(d, nbits)``.

    Thread safety: ``search``, ``range_search``, ``sa_encode``, ``save`` and pickling may run in
    many threads at once; ``train``, ``add``, ``add_with_ids``, ``remove_ids``, ``reset`` and
    setting ``nprobe`` each run alone (they wait for running searches, and searches wait
    for them), so every result is that of some order of the calls; ``train_from`` runs
    alone, ``add_from`` is a series of ``add`` calls. ``index.storage`` and ``index.model``
    themselves are not locked.
    """

    _lock = LockPerInstance()   # made on first use, however the index was made; not pickled
    _verbose = False

    @with_hyperparameter_keywords
    def __init__(self, d: int, hash_length: int, n_hidden: int | None = None,
                 activity: float | None = None, *, task: str = "neighbors",
                 storage: str = "flat", nlist: int | None = None, nprobe: int | None = None,
                 router: str = "learned", assign: int = DEFAULT_ASSIGN,
                 n_threads: int | None = None, **hyperparameters):
        n_hidden, activity = index_lsh_arguments(n_hidden, activity)
        params = task_params(task, d, hash_length, n_hidden, activity, **hyperparameters)
        self._setup(params, storage, n_threads, nlist=nlist, nprobe=nprobe, router=router,
                    assign=assign)

    @classmethod
    def from_params(cls, params: BioHashParams, *, storage: str = "flat",
                    nlist: int | None = None, nprobe: int | None = None,
                    router: str = "learned", assign: int = DEFAULT_ASSIGN,
                    n_threads: int | None = None) -> "BioHashIndex":
        """An empty, untrained index with exactly these hyperparameters (no task defaults)."""
        index = cls.__new__(cls)
        index._setup(params, storage, n_threads, nlist=nlist, nprobe=nprobe, router=router,
                     assign=assign)
        return index

    def _setup(self, params, storage, n_threads, **ivf) -> None:
        self.model = BioHashModel(params)
        self.storage = make_storage(storage, 8 * padded_code_size(params.code_size), **ivf)
        self.n_threads = check_n_threads(n_threads)
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
    def asymmetric(self) -> bool:
        """Whether ``search`` ranks by weighted Hamming distance (``scoring="asymmetric"``)
        rather than by Hamming distance."""
        return self.params.scoring == "asymmetric"

    @property
    def nbits(self) -> int:
        """Bits per code, m = n_hidden (k of them set): as ``IndexLSH.nbits``, the width of
        a code, ``code_size == (nbits + 7) // 8`` (+ 1 with ``length_byte``). IndexLSH's nbits
        argument is ``hash_length``."""
        return self.n_hidden

    @property
    def metric_type(self) -> int:
        """``faiss.METRIC_L2``, as IndexLSH and faiss's binary indexes report: smaller is
        nearer. The distances themselves are Hamming distances."""
        return faiss.METRIC_L2

    @property
    def verbose(self) -> bool:
        """Print a line per train/add call (and faiss's IVF clustering output); False."""
        return self._verbose

    @verbose.setter
    def verbose(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"verbose must be True or False, got {value!r}")
        self._verbose = bool(value)

    @property
    def nprobe(self) -> int:
        """IVF lists probed per query (IVF storage only): the one set, else the one learned
        in ``train`` (None before training)."""
        self._require_ivf("nprobe")
        return self.storage.nprobe

    @nprobe.setter
    @writes
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
    @writes
    @reported
    @uses_threads
    def train(self, x) -> None:
        """Learn the model from float (n, d) training vectors; n >= 1.

        Refused while the index holds vectors (their codes would no longer match the model).
        """
        x = check_vectors(x, self.d, "x", allow_empty=False)
        self._require_empty("train")
        self._train(x)

    def _train(self, x: np.ndarray) -> None:
        self._use_trained(BioHashModel(self.params).train(x), fresh_storage(self.storage), x)

    def _use_trained(self, model: BioHashModel, storage, x: np.ndarray | None) -> None:
        """Swap in a trained model and a fresh, empty storage, after training the storage
        (IVF: its router, learned anew) on float (n, d) x if it needs it; the index changes
        only if all succeeds."""
        if not storage.is_trained:
            storage.train(x, model.mean_, model.params.seed)
        self.model, self.storage = model, storage

    @reads
    @uses_threads
    def sa_encode(self, x) -> np.ndarray:
        """uint8 (n, code_size) codes of float (n, d) vectors.

        An untrained index encodes with its initial weights, drawn from ``seed`` alone
        (``BioHashModel.initial``), and warns (``UntrainedIndexWarning``): the same codes
        every time, but not those of the model training will make.
        """
        return self._coder("sa_encode").encode(check_vectors(x, self.d, "x"))

    @writes
    @reported
    @uses_threads
    def add(self, x) -> None:
        """Add float (n, d) vectors with ids next_id .. next_id + n - 1.

        next_id is one more than the largest id ever added (0 for a new or reset index), so
        it equals ntotal for an index filled only through ``add``, as in faiss. An
        untrained index first trains on x (IndexLSH scripts never call ``train``).
        """
        x = check_vectors(x, self.d, "x")
        if self._train_if_needed("add", x):
            self._add_codes(self.model.encode(x), next_ids(self._next_id, len(x)), x)

    @writes
    @reported
    @uses_threads
    def add_with_ids(self, x, ids) -> None:
        """Add float (n, d) vectors under int64 (n,) ids, which must be new, distinct and
        not -1; duplicates are rejected (to replace a vector, remove its id first). An
        untrained index first trains on x, as in ``add``."""
        x = check_vectors(x, self.d, "x")
        ids = check_new_ids(ids, len(x), self.storage.id_set)
        if self._train_if_needed("add_with_ids", x):
            self._add_codes(self.model.encode(x), ids, x)

    def _train_if_needed(self, what: str, x: np.ndarray) -> bool:
        """Train on x if the index is untrained; False if there is nothing to add."""
        if len(x) == 0:
            return False
        if not self.is_trained:
            needed = training_rows_needed(self.params)
            log.info("%s() on an untrained index: training on its %d vectors first (the model "
                     "needs %d)", what, len(x), needed)
            if len(x) < needed:
                warn(f"{what}() on an untrained index trains it on this batch of {len(x)} "
                     f"vectors, fewer than the {needed} this model needs "
                     "(training_rows_needed): call train() on a larger sample first, or make "
                     "the first add larger", SmallTrainingSetWarning)
            self._train(x)
        return True

    @writes
    @reported
    def train_from(self, source, *, column: str | None = None,
                   batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        """Train from a re-readable streaming source (arrays, Arrow/Parquet; see ``streaming``).

        IVF storage learns its router from a uniform sample of at most ``ROWS_PER_UNIT``
        vectors per list (with nlist=None, of MAX_ROUTER_SAMPLE vectors), drawn in one more
        pass (``seed`` picks it)."""
        self._require_empty("train_from")
        storage = fresh_storage(self.storage)
        n_sample = 0 if storage.is_trained else storage.router.sample_rows(MAX_ROUTER_SAMPLE)
        model, sample = train_from(source, self.params, column=column, batch_size=batch_size,
                                   n_sample=n_sample)
        self._use_trained(model, storage, sample)

    def add_from(self, source, *, column: str | None = None, ids_column: str | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> int:
        """Add the vectors of a streaming source block by block; returns how many were added."""
        return add_from(self, source, column=column, ids_column=ids_column, batch_size=batch_size)

    def _add_codes(self, codes: np.ndarray, ids: np.ndarray, x: np.ndarray | None = None) -> None:
        """Store codes under ids; x: their float32 (n, d) vectors, which routed storage
        lists them by (None: routed by their decoded vectors, ``sa_decode``)."""
        if len(ids) == 0:
            return
        if self.storage.routes and x is None:
            x = self.model.decode(codes[:, :self.code_size])
        self.storage.add(codes, ids, x)
        self._next_id = next_id_after(self._next_id, ids)

    # ---------------------------------------------------------------- searching
    @reads
    @uses_threads
    def search(self, xq, k: int, *, params=None, D=None, I=None):
        """k nearest stored vectors by the distance of their codes to the query.

        Returns D float32 (nq, k) ascending distances and I int64 (nq, k) ids; where fewer
        than k vectors are found, I is -1 and D is float32(2**31 - 1), as in faiss.
        Distances are weighted Hamming distances (``scoring="asymmetric"``, the default of
        ``task="neighbors"``) or Hamming distances, ties broken by id (``_search.py``).
        params: this call's faiss search parameters, ``faiss.SearchParametersIVF(nprobe=16)``
        or ``{"nprobe": 16}`` (IVF storage), ``faiss.SearchParameters(sel=selector)`` or
        ``{"sel": selector}`` (only the ids a ``faiss.IDSelector`` keeps; any storage);
        ``{"shortlist": 200}``: Hamming candidates per query re-ranked by weighted distance
        (asymmetric scoring; default 8 k, at least 64: fewer is faster, more finds more);
        D, I: preallocated float32 / int64 (nq, k) arrays to write the results into, as in
        faiss.
        """
        self._require_trained("search")
        xq = check_vectors(xq, self.d, "xq")
        k = check_k(k, len(xq))
        opts = self.search_options(params)
        D, I = result_arrays(D, I, (len(xq), k))
        D[:], I[:] = search_storage(self.model, self.storage, xq, k, nprobe=opts.nprobe,
                                    max_codes=opts.max_codes, sel=opts.sel,
                                    candidates=opts.shortlist)
        return D, I

    def search_options(self, params) -> SearchOptions:
        """``search``'s ``params`` checked against this index's storage (``SearchOptions``,
        which ``search`` also takes as params)."""
        return search_options(params, self.storage.kind == "ivf")

    @reads
    @uses_threads
    def range_search(self, xq, radius: float):
        """All stored vectors at Hamming distance < radius, in faiss's layout, each query's
        in (distance, id) order (IVF storage: among the lists the query probes).

        Returns lims (nq + 1,), D float32 and I int64; the results of query i are
        D[lims[i]:lims[i+1]], I[lims[i]:lims[i+1]].
        """
        self._require_trained("range_search")
        radius = check_real(radius, "radius", low=0.0)
        xq = check_vectors(xq, self.d, "xq")
        r = int(min(np.ceil(radius), 8 * self.code_size + 1))
        return range_search_storage(self.model, self.storage, xq, r)

    # ---------------------------------------------------------------- removing
    @writes
    def remove_ids(self, ids) -> int:
        """Remove the vectors with these int64 ids, or those a ``faiss.IDSelector`` selects
        (``IDSelectorRange``, ``IDSelectorBatch``, ``IDSelectorArray``, ...); returns how many
        were removed (unknown ids are skipped). The other vectors keep their ids."""
        if isinstance(ids, faiss.IDSelector):
            ids = selected_ids(ids, self.storage.ids())
        return self.storage.remove_ids(check_ids(ids))

    def merge_from(self, other: "BioHashIndex", add_id: int = 0) -> None:
        """Move the vectors of ``other`` into this index, their ids plus ``add_id``; ``other``
        is emptied (``reset``), as faiss's ``merge_from`` does.

        other: a BioHashIndex with the same model (equal weights, mean and encoding
        parameters), so its codes mean what this index's codes mean; any storage kind.
        Raises ValueError, and changes neither index, if the models differ or an id would
        collide with one stored here.
        """
        if not isinstance(other, BioHashIndex):
            raise TypeError(f"other must be a BioHashIndex, got {type(other).__name__}")
        if other is self:
            raise ValueError("cannot merge an index into itself")
        add_id = int(check_positive_int(add_id, "add_id", minimum=0))
        first, second = sorted((self, other), key=id)   # one lock order: no deadlock
        with first._lock.write(), second._lock.write():
            self._require_same_model(other)
            ids = other.storage.ids()
            if len(ids) and int(ids.max()) + add_id > MAX_ID:
                raise ValueError(f"add_id={add_id} takes ids of other past {MAX_ID}")
            ids = check_new_ids(ids + np.int64(add_id), len(ids), self.storage.id_set,
                                "ids of other")
            self._add_codes(other.storage.codes(), ids)
            other.reset()

    def _require_same_model(self, other: "BioHashIndex") -> None:
        a, b = self.model, other.model
        if not (a.is_trained and b.is_trained):
            raise ValueError("merge_from needs two trained indexes")
        encoding = ("d", "hash_length", "n_hidden", "p", "length_byte")
        same = all(getattr(a.params, f) == getattr(b.params, f) for f in encoding)
        if not (same and np.array_equal(a.weights_, b.weights_)
                and np.array_equal(a.mean_, b.mean_)
                and np.array_equal(a.length_levels_, b.length_levels_)):
            raise ValueError("merge_from needs indexes with the same model (equal d, "
                             "hash_length, n_hidden, p, length_byte, weights, mean and "
                             "length levels): other's codes "
                             "would mean something else here; train both from one model "
                             "(e.g. copy.deepcopy of a trained, empty index)")

    @writes
    def reset(self) -> None:
        """Remove all stored vectors (the model stays trained)."""
        self.storage.reset()
        self._next_id = 0

    # ---------------------------------------------------------------- saving and pickling
    @reads
    def save(self, path) -> None:
        """Save to ``path`` atomically, one file or a directory (see ``write_index``)."""
        write_index(self, path)

    @classmethod
    def load(cls, path) -> "BioHashIndex":
        """Load an index saved with ``save``; raises ``BioHashFormatError`` on a bad file."""
        return read_index(path)

    @reads
    def __getstate__(self) -> dict:
        """The index in its saved format as bytes, so it can be pickled and deep-copied
        (faiss binary indexes themselves cannot)."""
        return {"index": serialize_index(self)}

    def __setstate__(self, state: dict) -> None:
        self._set_state(deserialize_state(state["index"]))

    def _state(self) -> IndexState:
        """What saving writes: the model's learned state, the storage and the settings."""
        m = self.model
        return IndexState(m.params, m.mean_, m.weights_, m.train_stats_, self.storage,
                          self._next_id, self.n_threads, m.length_levels_)

    @classmethod
    def _from_state(cls, state: IndexState) -> "BioHashIndex":
        index = cls.__new__(cls)
        index._set_state(state)
        return index

    def _set_state(self, state: IndexState) -> None:
        """Become the index ``state`` describes (as loading decoded and checked it)."""
        self.model = BioHashModel.from_arrays(state.params, state.mean, state.weights,
                                              state.train_stats, state.length_levels)
        self.storage = state.storage
        self.n_threads, self._next_id = state.n_threads, state.next_id

    def _require_empty(self, what: str) -> None:
        if self.ntotal:
            raise RuntimeError(f"{what}() on an index holding {self.ntotal} vectors would make "
                               "their codes stale: call reset() first")

    def _require_trained(self, what: str) -> None:
        if not self.is_trained:
            raise RuntimeError(f"{what}() needs a trained index: call train() first")

    # ---------------------------------------------------------------- IndexLSH's codes and decoding
    # What IndexLSH scripts read besides search: the codes, their size, adding codes made
    # elsewhere, and decoding codes to vectors (docs/migrating-from-indexlsh.md).
    def sa_code_size(self) -> int:
        """Bytes per code, ``code_size``, as faiss's ``sa_code_size()``."""
        return self.code_size

    @property
    @reads
    def codes(self) -> faiss.UInt8Vector:
        """The stored codes as a faiss ``UInt8Vector`` (a copy): ntotal * code_size bytes in
        storage order, as ``IndexLSH.codes``; ``faiss.vector_to_array(index.codes)`` gives
        them as uint8, and ``faiss.vector_to_array(index.id_map)`` the id of each."""
        return array_to_vector(self.storage.codes()[:, :self.code_size].ravel())

    @property
    @reads
    def id_map(self) -> faiss.Int64Vector:
        """The stored ids in storage order as a faiss ``Int64Vector`` (a copy), as
        ``IndexIDMap.id_map``: the id of each code of ``codes``."""
        return array_to_vector(self.storage.ids())

    @writes
    def add_sa_codes(self, codes, ids=None) -> None:
        """Store uint8 (n, code_size) codes that ``sa_encode`` of this model made, under
        int64 (n,) ids (new, distinct, not -1) or, with None, numbered on as ``add`` does.
        Needs a trained index: codes made before training (initial weights) do not match it."""
        self._require_trained("add_sa_codes")
        codes = check_codes(codes, self.n_hidden, self.hash_length,
                            length_byte=self.params.length_byte)
        ids = (next_ids(self._next_id, len(codes)) if ids is None
               else check_new_ids(ids, len(codes), self.storage.id_set))
        self._add_codes(codes, ids)

    @reads
    def sa_decode(self, codes) -> np.ndarray:
        """float32 (n, d) vectors of uint8 (n, code_size) codes (``BioHashModel.decode``):
        the training mean plus a unit vector in the direction the code's units point. A
        code keeps the direction of ``x - mean``, not its length, so compare decoded
        vectors with ``x - mean`` by angle. An untrained index decodes with its initial
        weights and warns, as ``sa_encode``."""
        model = self._coder("sa_decode")
        return model.decode(check_codes(codes, self.n_hidden, self.hash_length,
                                        length_byte=self.params.length_byte))

    @reads
    def reconstruct_batch(self, ids) -> np.ndarray:
        """float32 (n, d) decoded codes (``sa_decode``) of the stored int64 (n,) ids; a
        ValueError names an id that is not stored. Costs a pass over the stored ids."""
        ids = check_ids(ids)
        stored = self.storage.ids()
        at, missing = np.zeros(len(ids), np.int64), ids
        if len(stored):
            order = np.argsort(stored)
            at = order[np.minimum(np.searchsorted(stored, ids, sorter=order), len(stored) - 1)]
            missing = ids[stored[at] != ids]
        if len(missing):
            raise ValueError(f"ids not stored in the index: {missing[:5].tolist()}")
        return self.model.decode(self.storage.codes()[at, :self.code_size])

    def reconstruct(self, key: int) -> np.ndarray:
        """float32 (d,) decoded code of the stored id ``key`` (see ``reconstruct_batch``)."""
        return self.reconstruct_batch(np.array([check_positive_int(key, "key", minimum=0)]))[0]

    def reconstruct_n(self, n0: int = 0, ni: int = -1) -> np.ndarray:
        """float32 (ni, d) decoded codes of the ids n0 .. n0 + ni - 1 (ni=-1: up to ntotal,
        as faiss), which must all be stored (see ``reconstruct_batch``)."""
        n0 = check_positive_int(n0, "n0", minimum=0)
        ni = self.ntotal - n0 if ni == -1 else check_positive_int(ni, "ni", minimum=0)
        return self.reconstruct_batch(np.arange(n0, n0 + max(ni, 0), dtype=np.int64))

    def __getattr__(self, name: str):
        """IndexLSH's attributes that have no counterpart say what to use instead."""
        if name in INDEX_LSH_ONLY:
            raise AttributeError(f"{type(self).__name__} has no {name!r} (an attribute of "
                                 f"faiss.IndexLSH): {INDEX_LSH_ONLY[name]}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _coder(self, what: str) -> BioHashModel:
        """The trained model or, for an untrained index, the initial one (with a warning)."""
        if self.model.is_trained:
            return self.model
        initial = self.model.initial
        warn(f"{what}() on an untrained index uses its initial weights, drawn from "
             f"seed={self.params.seed} with no mean subtracted; training replaces them, so "
             "these codes will not match the trained index's", UntrainedIndexWarning)
        return initial


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` pointing at the first caller outside this package."""
    warnings.warn(message, category, stacklevel=stacklevel_outside("biohash_index"))


def array_to_vector(a: np.ndarray):
    """A faiss vector (``UInt8Vector``, ``Int64Vector``, ...) holding a copy of 1-D ``a``."""
    v = getattr(faiss, {np.dtype(np.uint8): "UInt8Vector",
                        np.dtype(np.int64): "Int64Vector"}[a.dtype])()
    faiss.copy_array_to_vector(np.ascontiguousarray(a), v)
    return v


# -------------------------------------------------------------------- saving and loading
def write_index(index: BioHashIndex, path) -> None:
    """Save ``index`` to ``path`` atomically: one file, as ``faiss.write_index`` writes, or
    a directory (layouts: docs/format.md).

    Which, by ``_formats.index_file.saves_to_file``: an existing directory, a path ending in
    a separator or a new path without a suffix (``indexes/sift``) is a directory; an
    existing file or a new path with a suffix (``index.faiss``, ``sift.index``) is one file
    (``serialize_index``'s bytes). Only an empty file or directory, or one holding a saved
    index, is replaced; anything else is refused with a ValueError before anything is
    touched. If the save fails, ``path`` still holds the previous index, complete.
    """
    if not isinstance(index, BioHashIndex):
        hint = (": use write_index_refine(index, path) or index.save(path)"
                if type(index).__name__ == "BioHashIndexRefine" else "")
        raise TypeError(f"index must be a BioHashIndex, got {type(index).__name__}{hint}")
    index_file.write(index._state(), path)


def read_index(path) -> BioHashIndex:
    """Load an index saved by ``write_index``, a file or a directory (``path`` may also be
    a single generation directory, one holding manifest.json); raises
    ``BioHashFormatError`` naming the file when anything is missing, corrupted or
    inconsistent."""
    return BioHashIndex._from_state(index_file.read(path))


def serialize_index(index: BioHashIndex) -> bytes:
    """The files of one saved generation in an uncompressed tar archive, as bytes."""
    if not isinstance(index, BioHashIndex):
        raise TypeError(f"index must be a BioHashIndex, got {type(index).__name__}")
    return serialize_state(index._state())


def deserialize_index(data: bytes) -> BioHashIndex:
    """Inverse of ``serialize_index``, with all the checks of ``read_index``."""
    return BioHashIndex._from_state(deserialize_state(data))
