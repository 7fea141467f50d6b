"""``BioHashStore``: documents with embeddings, searched exactly, then through BioHash codes.

The engine of the LangChain and LlamaIndex vector stores (``integrations/``), which are thin
adapters over it; usable alone by any retrieval pipeline.

Search policy:
- Until ``train_threshold`` documents are stored, search is exact over the float vectors
  (``faiss.IndexFlat``: inner product of unit vectors for "cosine", L2 for "l2").
- The add that reaches the threshold (default ``max(1000, 2 * n_hidden)``) then trains a
  ``BioHashIndex`` on everything stored. Training runs outside the store's lock: searches
  (still exact), adds and deletes go on meanwhile, and what changed is applied to the new
  index before it is swapped in. From then on a search takes ``k * k_factor`` Hamming
  candidates and re-ranks them by exact distance (``BioHashIndexRefine``); later adds are
  encoded with the trained model, ``train()`` retrains on everything stored.

Bookkeeping: each document is a ``Record`` (string id, text, metadata, and ``extra``: data
an adapter keeps beside it), stored under an int64 key in the faiss indexes. Adding an
existing id replaces that document. Every call validates its input before it changes
anything, so a call either completes or leaves the store as it was. Metadata and extra
must survive JSON (str keys; str, int, float, bool, None, lists, dicts), so that a saved
store loads back equal. Filters: ``compile_filter``.

Files: ``save`` writes one Arrow IPC file (a row per document: id, key, text, metadata and
extra as JSON, vector; the options and the trained BioHash index in the schema metadata);
``to_bytes`` gives the same as bytes. Loading parses Arrow and JSON only.

Thread safety: searches run in parallel; adds, deletes and the swap to a trained index
run alone (``_locking.ReadWriteLock``).
"""
from __future__ import annotations

import copy
import inspect
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import faiss
import numpy as np
import pyarrow as pa

from ._faiss_compat import FAISS_METRICS
from ._filters import compile_filter
from ._formats._io import BioHashFormatError, write_bytes_atomic
from ._formats.refine import RefineState
from ._formats.store import StoreState, decode_store, decode_table, encode_store, store_table
from ._index import BioHashIndex
from ._locking import ReadWriteLock
from ._model import n_hidden_for
from ._refine import BioHashIndexRefine
from ._validation import (as_array, check_json, check_positive_int, check_real, check_vectors,
                          saved_n_threads)

METRICS = ("cosine", "l2")
# what the integrations build on: the engine, its records, and the checks and filters they share
__all__ = ["BioHashStore", "Record", "Hit", "METRICS", "default_hash_length", "check_ids",
           "check_positive_int", "compile_filter"]


@dataclass(frozen=True)
class Record:
    """One document: its string id, text, metadata (filterable) and ``extra`` (an adapter's
    own data, e.g. LlamaIndex node relationships). Both dicts must survive JSON."""
    id: str
    text: str
    metadata: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """A search result: the record, its distance to the query (cosine distance ``1 - cos``
    or Euclidean distance, lower is nearer) and, when asked for, its float32 (d,) vector."""
    record: Record
    distance: float
    vector: np.ndarray | None = None


def copy_record(record: Record) -> Record:
    """A copy of a stored record sharing nothing mutable with it: its dicts hold JSON values
    only (``check_record``), so copying dicts and lists is a deep copy, without
    ``copy.deepcopy``'s bookkeeping (a fifth of a small store's query)."""
    return Record(record.id, record.text, _json_copy(record.metadata), _json_copy(record.extra))


def _json_copy(value):
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item) for item in value]
    return value


def default_hash_length(d: int) -> int:
    """Active units per code for d-dimensional embeddings: d // 2 clipped to [8, 256], so
    codes of d bits (48 bytes for 384-d) with the default task."""
    return min(256, max(8, d // 2))


def check_record(record: Record, name: str = "record") -> Record:
    """``record`` if its fields have the stored types (see ``Record``), else raise."""
    if not isinstance(record, Record):
        raise TypeError(f"{name} must be a Record, got {type(record).__name__}")
    if not isinstance(record.id, str):
        raise TypeError(f"{name}.id must be a string, got {record.id!r} "
                        f"({type(record.id).__name__})")
    if not isinstance(record.text, str):
        raise TypeError(f"{name}.text must be a string, got {type(record.text).__name__}")
    for part in ("metadata", "extra"):
        value = getattr(record, part)
        if not isinstance(value, dict):
            raise TypeError(f"{name}.{part} must be a dict, got {type(value).__name__}")
        check_json(value, f"{name}.{part}")
    return record


def check_ids(ids: Iterable[str], name: str = "ids") -> list[str]:
    """``ids`` as a list of strings, or a TypeError naming the first that is not one."""
    if isinstance(ids, str):
        raise TypeError(f"{name} must be a list of strings, got a string")
    ids = list(ids)
    for i in ids:
        if not isinstance(i, str):
            raise TypeError(f"{name} must be strings, got {i!r} ({type(i).__name__})")
    return ids


class BioHashStore:
    """Records and their embeddings, searched exactly until ``train_threshold`` records are
    stored, then through BioHash candidates re-ranked exactly (see the module docstring).

    metric: "cosine" (vectors scaled to unit length) or "l2"; hash_length, n_hidden,
    activity: the code shape (hash_length defaults to ``default_hash_length(d)``);
    k_factor: candidates per result re-ranked exactly; train_threshold: stored records at
    which the hash is trained (at least as many as training needs: ``nlist`` with IVF
    storage); index_options: further ``BioHashIndex`` keywords (``seed``, ``epochs``,
    ``storage``, ...), which must survive JSON (``n_threads`` is lowered to numba's thread
    count when a saved store is loaded, as for an index).
    """

    def __init__(self, *, metric: str = "cosine", hash_length: int | None = None,
                 n_hidden: int | None = None, activity: float | None = None,
                 k_factor: float = 10.0,
                 train_threshold: int | None = None, **index_options: Any):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        check_real(k_factor, "k_factor", low=1.0)
        if activity is not None:
            check_real(activity, "activity", low=0.0, high=1.0, low_inclusive=False)
        for value, name in ((hash_length, "hash_length"), (n_hidden, "n_hidden"),
                            (train_threshold, "train_threshold")):
            if value is not None:
                check_positive_int(value, name)
        _check_index_options(index_options)
        self.config = dict(metric=metric, hash_length=hash_length, n_hidden=n_hidden,
                           activity=activity, k_factor=k_factor,
                           train_threshold=train_threshold, index_options=index_options)
        self.index: faiss.Index | BioHashIndexRefine | None = None   # None until the first add
        self._records: dict[int, Record] = {}    # int64 key -> record
        self._keys: dict[str, int] = {}          # id -> int64 key
        self._next_key = 0
        self._lock = ReadWriteLock()
        self._training = threading.Lock()        # one training at a time

    # ---------------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._keys

    @property
    def dim(self) -> int | None:
        """The embedding dimension (None before the first add)."""
        return None if self.index is None else self.index.d

    @property
    def is_hashed(self) -> bool:
        """True once the BioHash index is trained and used for search."""
        return isinstance(self.index, BioHashIndexRefine)

    @property
    def hash_length(self) -> int | None:
        """Active units per code (None before the first add fixes the dimension)."""
        if self.dim is None:
            return self.config["hash_length"]
        return self.config["hash_length"] or default_hash_length(self.dim)

    @property
    def train_threshold(self) -> int | None:
        """Stored records at which the BioHash index is trained: by default
        ``max(1000, 2 * n_hidden)`` (None while that depends on the unknown dimension)."""
        cfg = self.config
        if cfg["train_threshold"] is not None:
            return cfg["train_threshold"]
        if cfg["n_hidden"] is None and self.hash_length is None:
            return None
        return max(1000, 2 * (cfg["n_hidden"] or n_hidden_for(
            self.hash_length, cfg["activity"], cfg["index_options"].get("task", "neighbors"))))

    @property
    def _index_metric(self) -> str:
        return "ip" if self.config["metric"] == "cosine" else "l2"

    # ---------------------------------------------------------------- adding
    def add(self, embeddings, records: Sequence[Record]) -> None:
        """Store records with their float (n, d) embeddings; a stored id is replaced.

        Trains the BioHash index when the store reaches ``train_threshold`` (searches go on
        meanwhile, see the module docstring).
        """
        records = [check_record(copy.deepcopy(r), f"records[{i}]")   # the store's own copy
                   for i, r in enumerate(records)]
        ids = [r.id for r in records]
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be distinct within one call")
        x = self._vectors(embeddings, len(records))
        if not records:
            return
        with self._lock.write():
            self._insert(x, records)
            due = self._training_due
        if due:
            self._train_if_due()

    def _insert(self, x: np.ndarray, records: list[Record]) -> None:
        """Add prepared vectors (holding the write lock): the new keys are added first and
        the replaced ones removed after, so a failure leaves the store as it was."""
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"embeddings have {x.shape[1]} dimensions, the store holds "
                             f"{self.dim}")
        if self.index is None:
            self._new_base(x.shape[1])          # refuse bad index options before storing
            index = self._flat_index(x.shape[1])
        else:
            index = self.index
        keys = np.arange(self._next_key, self._next_key + len(records), dtype=np.int64)
        index.add_with_ids(x, keys)
        old = [self._keys[r.id] for r in records if r.id in self._keys]
        if old:
            index.remove_ids(np.array(old, np.int64))
        self.index = index
        self._next_key += len(records)
        for key in old:
            del self._records[key]
        for key, record in zip(keys.tolist(), records):
            self._records[key] = record
            self._keys[record.id] = key

    def merge_from(self, other: "BioHashStore") -> None:
        """Add all of ``other``'s records and vectors; refused (nothing added) when the
        metrics or dimensions differ or an id is in both stores."""
        if not isinstance(other, BioHashStore):
            raise TypeError(f"other must be a BioHashStore, got {type(other).__name__}")
        if other.config["metric"] != self.config["metric"]:
            raise ValueError(f"cannot merge: the other store's metric is "
                             f"{other.config['metric']!r}, this one's {self.config['metric']!r}")
        if other is self:
            raise ValueError("cannot merge a store into itself")
        with other._lock.read():
            keys = np.fromiter(other._records, np.int64, len(other._records))
            records = [other._records[key] for key in keys.tolist()]
            x = other._reconstruct(keys)
        if not records:
            return
        with self._lock.write():
            clash = [r.id for r in records if r.id in self._keys]
            if clash:
                raise ValueError(f"cannot merge: ids in both stores: {clash[:5]}")
            self._insert(x, records)
            due = self._training_due
        if due:
            self._train_if_due()

    # ---------------------------------------------------------------- training
    def train(self) -> None:
        """Train a BioHash index on every stored vector and search through it from now on
        (searches go on, exact or with the previous model, while it trains)."""
        with self._training:
            self._train()

    @property
    def _training_due(self) -> bool:
        """Whether the store is not yet hashed and holds train_threshold records, and as many
        as training needs (``nlist`` for IVF storage): training can then not fail on the
        options or the data, so an add that trains has nothing to undo."""
        n = len(self._records)
        return (not self.is_hashed and n >= self.train_threshold
                and n >= self._new_base(self.dim).storage.min_train)

    def _train_if_due(self) -> None:
        if not self._training.acquire(blocking=False):
            return                              # another thread is training
        try:
            if self._training_due:
                self._train()
        finally:
            self._training.release()

    def _train(self) -> None:
        with self._lock.read():
            if not self._records:
                raise RuntimeError("train() needs stored documents: add some first")
            keys = np.fromiter(self._records, np.int64, len(self._records))
            x = self._reconstruct(keys)
        index = self._fit(x, keys)              # the long part, without the lock
        with self._lock.write():                # apply what changed meanwhile, then swap
            now = np.fromiter(self._records, np.int64, len(self._records))
            gone, new = keys[~np.isin(keys, now)], now[~np.isin(now, keys)]
            if len(gone):
                index.remove_ids(gone)
            if len(new):
                index.add_with_ids(self._reconstruct(new), new)
            self.index = index

    def _fit(self, x: np.ndarray, keys: np.ndarray) -> BioHashIndexRefine:
        """A ``BioHashIndexRefine`` trained on x (n, d) and holding it under ``keys``."""
        index = BioHashIndexRefine(self._new_base(x.shape[1]), self._index_metric,
                                   self.config["k_factor"])
        index.train(x)
        index.add_with_ids(x, keys)
        return index

    def _new_base(self, d: int) -> BioHashIndex:
        cfg = self.config
        return BioHashIndex(d, cfg["hash_length"] or default_hash_length(d), cfg["n_hidden"],
                            cfg["activity"], **cfg["index_options"])

    # ---------------------------------------------------------------- deleting and getting
    def delete(self, ids: Iterable[str]) -> int:
        """Remove the records with these ids (unknown ids are skipped); returns how many."""
        ids = check_ids(ids)
        with self._lock.write():
            keys = sorted({self._keys[i] for i in ids if i in self._keys})
            if keys:
                self.index.remove_ids(np.array(keys, np.int64))
            for key in keys:
                del self._keys[self._records.pop(key).id]
        return len(keys)

    def clear(self) -> None:
        """Remove every record (a trained model stays, as ``BioHashIndex.reset``)."""
        with self._lock.write():
            if self.index is not None:
                self.index.reset()
            self._records.clear()
            self._keys.clear()

    def get(self, ids: Iterable[str] | None = None,
            filter: Mapping[str, Any] | Callable[[Record], bool] | None = None) -> list[Record]:
        """Copies of the records with these ids (in that order, unknown ids skipped; None:
        all records, in insertion order) that match ``filter`` (see ``search``)."""
        match = _record_filter(filter)
        ids = None if ids is None else check_ids(ids)
        with self._lock.read():
            keys = (list(self._records) if ids is None
                    else [self._keys[i] for i in ids if i in self._keys])
            found = [self._records[key] for key in keys]
            return [copy_record(r) for r in found if match is None or match(r)]

    # ---------------------------------------------------------------- searching
    def search(self, query, k: int, *,
               filter: Mapping[str, Any] | Callable[[Record], bool] | None = None,
               fetch_k: int = 20, ids: Iterable[str] | None = None,
               with_vectors: bool = False) -> list[Hit]:
        """Up to k records nearest to one float (d,) query embedding, nearest first.

        filter: a metadata filter (``compile_filter``) or a predicate on the
        ``Record``; then ``max(k, fetch_k)`` nearest are fetched and filtered, and more
        (4x each round, up to all records) while fewer than k match. ids: search only among
        the records with these ids (exactly). with_vectors: also return the stored vectors.
        """
        k = check_positive_int(k, "k")
        fetch_k = check_positive_int(fetch_k, "fetch_k")
        match = _record_filter(filter)
        ids = None if ids is None else check_ids(ids)
        xq = self._vectors(as_array(query, "query")[None], 1, name="query")
        with self._lock.read():
            n = len(self._records)
            if not n:
                return []
            if xq.shape[1] != self.dim:
                raise ValueError(f"query has {xq.shape[1]} dimensions, the store holds "
                                 f"{self.dim}")
            if ids is not None:
                found = self._search_among(xq, {self._keys[i] for i in ids if i in self._keys})
                hits = [(key, d) for key, d in found if match is None or match(self._records[key])]
            else:
                want = min(n, k if match is None else max(k, fetch_k))
                while True:
                    hits = [(key, d) for key, d in self._nearest(xq, want)
                            if match is None or match(self._records[key])]
                    if len(hits) >= k or want >= n:
                        break
                    want = min(n, 4 * want)
            hits = hits[:k]
            keys = np.array([key for key, _ in hits], np.int64)
            vectors = self._reconstruct(keys) if with_vectors else [None] * len(hits)
            return [Hit(copy_record(self._records[key]), d, v)
                    for (key, d), v in zip(hits, vectors)]

    def _nearest(self, xq: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(key, distance) of the k nearest stored vectors (holding the lock)."""
        D, I = self.index.search(xq, k)
        found = I[0] >= 0
        return list(zip(I[0][found].tolist(), self._distances(D[0][found]).tolist()))

    def _search_among(self, xq: np.ndarray, keys: set[int]) -> list[tuple[int, float]]:
        """(key, distance) of the given stored keys, nearest first, computed exactly."""
        keys = np.array(sorted(keys), np.int64)
        x = self._reconstruct(keys)
        D = x @ xq[0] if self._index_metric == "ip" else ((x - xq[0]) ** 2).sum(axis=1)
        order = np.argsort(-D if self._index_metric == "ip" else D, kind="stable")
        return list(zip(keys[order].tolist(), self._distances(D[order]).tolist()))

    def _distances(self, D: np.ndarray) -> np.ndarray:
        """The indexes' scores (inner products, squared L2) as cosine or L2 distances."""
        D = D.astype(np.float64)
        return 1.0 - D if self._index_metric == "ip" else np.sqrt(np.maximum(D, 0.0))

    def _reconstruct(self, keys: np.ndarray) -> np.ndarray:
        if not len(keys):
            return np.zeros((0, self.dim or 1), np.float32)
        return self.index.reconstruct_batch(keys)

    def _vectors(self, embeddings, n: int, name: str = "embeddings") -> np.ndarray:
        """float32 (n, d) rows (a copy), scaled to unit length for "cosine"."""
        arr = as_array(embeddings, name)
        if n == 0 and arr.size == 0:
            return np.zeros((0, self.dim or 1), np.float32)
        d = self.dim or (arr.shape[1] if arr.ndim == 2 and arr.shape[1] else 1)
        x = np.array(check_vectors(arr, d, name), np.float32)
        if len(x) != n:
            raise ValueError(f"{name} must have one row per record: {n} records, {len(x)} rows")
        if self.config["metric"] == "cosine":
            faiss.normalize_L2(x)
        return x

    def _flat_index(self, d: int) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlat(d, FAISS_METRICS[self._index_metric]))

    # ---------------------------------------------------------------- saving and loading
    def _state(self) -> StoreState:
        """What saving writes (the store format, ``_formats.store``)."""
        with self._lock.read():
            keys = np.fromiter(self._records, np.int64, len(self._records))
            records = [self._records[key] for key in keys.tolist()]
            d = self.dim or 0
            x = self._reconstruct(keys) if len(keys) else np.zeros((0, max(d, 1)), np.float32)
            base = self.index.base_index._state() if self.is_hashed else None
            return StoreState(copy.deepcopy(self.config), d, self._next_key,
                              [r.id for r in records], [r.text for r in records],
                              [r.metadata for r in records], [r.extra for r in records],
                              keys, x, base)

    def to_table(self) -> pa.Table:
        """The store as an Arrow table (the store format, docs/format.md)."""
        return store_table(self._state())

    def save(self, path) -> None:
        """Write the store to one Arrow IPC file at ``path``, atomically (a failed save
        leaves the previous file intact)."""
        write_bytes_atomic(encode_store(self._state()), path)

    def to_bytes(self) -> bytes:
        """The store as the bytes of the file ``save`` writes."""
        return encode_store(self._state())

    @classmethod
    def load(cls, path) -> "BioHashStore":
        """A store from ``save``'s file (a regular file: a link, FIFO or device is refused);
        raises ``BioHashFormatError`` naming the file and the part on a bad file."""
        return cls._from_state(decode_store(Path(path)), str(path))

    @classmethod
    def from_bytes(cls, data: bytes) -> "BioHashStore":
        """A store from ``to_bytes``; raises ``BioHashFormatError`` on bad bytes."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        return cls._from_state(decode_store(data, "bytes"), "bytes")

    @classmethod
    def from_table(cls, table: pa.Table, where: str = "table") -> "BioHashStore":
        """A store from ``to_table``'s table; raises ``BioHashFormatError`` when it is not
        one or its parts disagree."""
        return cls._from_state(decode_table(table, where), where)

    @classmethod
    def _from_state(cls, state: StoreState, where: str) -> "BioHashStore":
        """The store ``state`` describes (decoded and checked); its options are checked by
        the constructor (a saved n_threads is lowered to numba's thread count here)."""
        config = copy.deepcopy(state.config)
        options = config.pop("index_options")
        if "n_threads" in options:
            options["n_threads"] = saved_n_threads(options["n_threads"])
        try:
            store = cls(**config, **options)
        except (TypeError, ValueError) as e:
            raise BioHashFormatError(f"{where}: config: {e}") from None
        if state.base is not None:   # the codes it saved, under the keys
            store.index = BioHashIndexRefine._from_state(RefineState(
                state.base, store._index_metric, store.config["k_factor"], state.next_key,
                state.keys, state.vectors))
        elif state.dim:
            store.index = store._flat_index(state.dim)
            store.index.add_with_ids(state.vectors, state.keys)
        store._next_key = state.next_key
        for key, *fields in zip(state.keys.tolist(), state.ids, state.texts, state.metadata,
                                state.extra):
            store._records[key] = Record(*fields)
            store._keys[fields[0]] = key
        return store


def _record_filter(filter) -> Callable[[Record], bool] | None:
    """A predicate on records: a callable as is, a metadata filter compiled, None as None."""
    if filter is None or callable(filter):
        return filter
    match = compile_filter(filter)
    return lambda record: match(record.metadata)


def _check_index_options(options: dict) -> None:
    """Refuse keywords ``BioHashIndex`` does not take, and values that do not survive JSON."""
    params = inspect.signature(BioHashIndex).parameters
    for key in options:
        if key not in params or key in ("d", "hash_length", "n_hidden", "activity"):
            raise TypeError(f"unknown index option {key!r}; BioHashIndex takes "
                            f"{[p for p in params if p not in ('d', 'hash_length', 'n_hidden', 'activity')]}")
    check_json(options, "index_options")
