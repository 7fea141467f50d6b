"""``BioHashVectorStore``: a LangChain vector store on BioHash codes with exact re-ranking.

Search policy:
- Until ``train_threshold`` vectors are stored, search is exact: the float vectors sit in a
  ``faiss.IndexFlat`` (inner product of unit vectors for "cosine", L2 for "l2").
- When an add brings the count to ``train_threshold`` (default ``max(1000, 2 * n_hidden)``),
  a ``BioHashIndex`` is trained once on all stored vectors and from then on search takes
  ``k * k_factor`` Hamming candidates and re-ranks them by exact distance
  (``BioHashIndexRefine``). Later adds are encoded with that model; ``train()`` retrains on
  everything stored.
- ``hash_length`` defaults to ``d // 8`` clipped to [8, 64] for d-dimensional embeddings (48
  for 384-d), with ``n_hidden = hash_length / activity`` units (20x by default).

Scores are distances, lower is better: cosine distance ``1 - cos`` or Euclidean distance.
``save_local`` writes one Arrow IPC file (documents, metadata as JSON, vectors, and the trained
index through biohash-index's own serialization); nothing is pickled, so loading never runs
code and needs no dangerous-deserialization flag.
"""
from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import faiss
import numpy as np
import pyarrow as pa
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from biohash_index import BioHashIndex, BioHashIndexRefine, deserialize_index, serialize_index
from biohash_index.index import n_hidden_for
from biohash_index.persistence import write_table_atomic
from biohash_index.refine import METRICS as REFINE_METRICS
from biohash_index.validation import check_positive_int, check_real

METRICS = ("cosine", "l2")
FORMAT = "langchain-biohash"
FORMAT_VERSION = 1


def default_hash_length(d: int) -> int:
    """Active units per code for d-dimensional embeddings: d // 8 clipped to [8, 64]."""
    return min(64, max(8, d // 8))


class BioHashVectorStore(VectorStore):
    """Documents indexed by BioHash codes of their embeddings (see the module docstring).

    embedding: the LangChain embedding model; metric: "cosine" or "l2"; hash_length,
    n_hidden, activity: the code shape (defaults depend on the embedding dimension);
    k_factor: candidates per result re-ranked exactly; train_threshold: stored vectors at
    which the hash is trained; index_options: further ``BioHashIndex`` keywords
    (``seed``, ``epochs``, ``storage``, ...).
    """

    def __init__(self, embedding: Embeddings, *, metric: str = "cosine",
                 hash_length: int | None = None, n_hidden: int | None = None,
                 activity: float = 0.05, k_factor: float = 10.0,
                 train_threshold: int | None = None, **index_options: Any):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        check_real(k_factor, "k_factor", low=1.0)
        for value, name in ((hash_length, "hash_length"), (n_hidden, "n_hidden"),
                            (train_threshold, "train_threshold")):
            if value is not None:
                check_positive_int(value, name)
        self.embedding = embedding
        self.config = dict(metric=metric, hash_length=hash_length, n_hidden=n_hidden,
                           activity=activity, k_factor=k_factor, train_threshold=train_threshold,
                           index_options=index_options)
        self.index: faiss.Index | BioHashIndexRefine | None = None   # None until the first add
        self._docs: dict[int, Document] = {}     # int64 key -> document (with its string id)
        self._keys: dict[str, int] = {}          # string id -> int64 key
        self._next_key = 0
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- properties
    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    @property
    def is_hashed(self) -> bool:
        """True once the BioHash index is trained and used for search."""
        return isinstance(self.index, BioHashIndexRefine)

    def __len__(self) -> int:
        return len(self._docs)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.config["metric"] == "cosine":
            return self._cosine_relevance_score_fn
        return self._euclidean_relevance_score_fn

    # ---------------------------------------------------------------- adding
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Embed and store texts; an existing id is replaced (upsert). Returns the ids."""
        texts = list(texts)
        metadatas = [{} for _ in texts] if metadatas is None else list(metadatas)
        ids = [None] * len(texts) if ids is None else list(ids)
        if not len(metadatas) == len(ids) == len(texts):
            raise ValueError(f"texts, metadatas and ids must have the same length, got "
                             f"{len(texts)}, {len(metadatas)} and {len(ids)}")
        ids = [str(uuid.uuid4()) if i is None else i for i in ids]
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be distinct within one call")
        if not texts:
            return []
        vectors = self._vectors(self.embedding.embed_documents(texts))
        with self._lock:
            self.delete([i for i in ids if i in self._keys])
            keys = np.arange(self._next_key, self._next_key + len(texts), dtype=np.int64)
            self._next_key += len(texts)
            if self.index is None:
                self.index = self._flat_index(vectors.shape[1])
            self.index.add_with_ids(vectors, keys)
            for key, id_, text, meta in zip(keys.tolist(), ids, texts, metadatas):
                self._docs[key] = Document(id=id_, page_content=text, metadata=dict(meta))
                self._keys[id_] = key
            if not self.is_hashed and len(self._docs) >= self.train_threshold:
                self.train()
        return ids

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                   **kwargs: Any) -> "BioHashVectorStore":
        """A new store (``kwargs`` are the constructor's options) holding these texts."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    # ---------------------------------------------------------------- training
    @property
    def dim(self) -> int | None:
        return None if self.index is None else self.index.d

    @property
    def hash_length(self) -> int | None:
        """Active units per code (None before the first add fixes the dimension)."""
        if self.dim is None:
            return self.config["hash_length"]
        return self.config["hash_length"] or default_hash_length(self.dim)

    @property
    def train_threshold(self) -> int:
        """Stored vectors at which the BioHash index is trained (needs the dimension)."""
        if self.config["train_threshold"] is not None:
            return self.config["train_threshold"]
        cfg = self.config
        return max(1000, 2 * (cfg["n_hidden"] or n_hidden_for(self.hash_length, cfg["activity"])))

    def _new_base(self) -> BioHashIndex:
        cfg = self.config
        return BioHashIndex(self.dim, self.hash_length, cfg["n_hidden"], cfg["activity"],
                            **cfg["index_options"])

    def train(self) -> None:
        """Train a BioHash index on every stored vector and search through it from now on."""
        with self._lock:
            if not self._docs:
                raise RuntimeError("train() needs stored documents: add some first")
            keys = np.fromiter(self._docs, np.int64, len(self._docs))
            vectors = self.index.reconstruct_batch(keys)
            index = BioHashIndexRefine(self._new_base(), self._index_metric,
                                       self.config["k_factor"])
            index.train(vectors)
            index.add_with_ids(vectors, keys)
            self.index = index

    # ---------------------------------------------------------------- deleting and getting
    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Remove documents by id (unknown ids are ignored); ``None`` removes all."""
        with self._lock:
            ids = list(self._keys) if ids is None else ids
            keys = [self._keys.pop(i) for i in ids if i in self._keys]
            for key in keys:
                del self._docs[key]
            if keys:
                self.index.remove_ids(np.array(keys, np.int64))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in that order; unknown ids are skipped."""
        with self._lock:
            return [self._docs[self._keys[i]].model_copy(deep=True) for i in ids if i in self._keys]

    # ---------------------------------------------------------------- searching
    def similarity_search_with_score_by_vector(
            self, embedding: list[float], k: int = 4, filter: dict | Callable | None = None,
            fetch_k: int = 20, **kwargs: Any) -> list[tuple[Document, float]]:
        """k (document, distance) pairs nearest to an embedding, nearest first.

        filter: metadata values to match (dict) or a predicate on the metadata; with a
        filter, ``max(fetch_k, k)`` nearest are fetched and then filtered.
        """
        keys, dist = self._search(self._vectors([embedding]), max(k, fetch_k) if filter else k)
        match = _metadata_filter(filter)
        out = [(self._docs[key].model_copy(deep=True), d) for key, d in zip(keys, dist)]
        return [(doc, d) for doc, d in out if match(doc.metadata)][:k]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any
                                     ) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score_by_vector(
            self.embedding.embed_query(query), k, **kwargs)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any
                                    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(
            embedding, k, **kwargs)]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def max_marginal_relevance_search_by_vector(
            self, embedding: list[float], k: int = 4, fetch_k: int = 20,
            lambda_mult: float = 0.5, filter: dict | Callable | None = None,
            **kwargs: Any) -> list[Document]:
        """k documents chosen among the ``fetch_k`` nearest for relevance and diversity."""
        with self._lock:
            pairs = self.similarity_search_with_score_by_vector(
                embedding, fetch_k, filter=filter, fetch_k=fetch_k)
            if not pairs:
                return []
            keys = np.array([self._keys[doc.id] for doc, _ in pairs], np.int64)
            vectors = self.index.reconstruct_batch(keys)
        chosen = maximal_marginal_relevance(np.asarray(embedding, np.float32), vectors,
                                            lambda_mult=lambda_mult, k=k)
        return [pairs[i][0] for i in chosen]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(
            self.embedding.embed_query(query), k, fetch_k, lambda_mult, **kwargs)

    def _search(self, xq: np.ndarray, k: int) -> tuple[list[int], list[float]]:
        """Keys and distances (cosine or Euclidean) of the k nearest to one query."""
        with self._lock:
            if self.index is None or not self._docs:
                return [], []
            D, I = self.index.search(xq, k)
        found = I[0] >= 0
        D = D[0][found].astype(np.float64)
        dist = 1.0 - D if self.config["metric"] == "cosine" else np.sqrt(np.maximum(D, 0.0))
        return I[0][found].tolist(), dist.tolist()

    def _vectors(self, embeddings: Sequence[Sequence[float]]) -> np.ndarray:
        """float32 (n, d) rows, scaled to unit length for "cosine"."""
        x = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
        if x.ndim != 2 or not np.isfinite(x).all():
            raise ValueError(f"embeddings must be finite vectors of one length, got shape "
                             f"{x.shape}")
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"embeddings have {x.shape[1]} dimensions, the store holds {self.dim}")
        if self.config["metric"] == "cosine":
            faiss.normalize_L2(x)
        return x

    @property
    def _index_metric(self) -> str:
        """The indexes' metric: inner product of unit vectors for "cosine", else "l2"."""
        return "ip" if self.config["metric"] == "cosine" else "l2"

    def _flat_index(self, d: int) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlat(d, REFINE_METRICS[self._index_metric]))

    # ---------------------------------------------------------------- saving and loading
    def save_local(self, folder_path: str | os.PathLike, index_name: str = "index") -> None:
        """Write ``folder_path/index_name.arrow`` atomically (a failed save leaves the
        previous file intact): one row per document (id, text, metadata as JSON, vector),
        the options and, once trained, the BioHash index in the schema metadata."""
        with self._lock:
            keys = np.fromiter(self._docs, np.int64, len(self._docs))
            d = self.dim or 0
            vectors = (self.index.reconstruct_batch(keys) if len(keys)
                       else np.zeros((0, max(d, 1)), np.float32))
            docs = [self._docs[key] for key in keys.tolist()]
            meta = {"format": FORMAT, "version": str(FORMAT_VERSION), "dim": str(d),
                    "next_key": str(self._next_key), "config": json.dumps(self.config)}
            extra = {}
            if self.is_hashed:
                extra["biohash_index"] = serialize_index(self.index.base_index)
            table = pa.table({
                "id": pa.array([doc.id for doc in docs], pa.string()),
                "key": pa.array(keys, pa.int64()),
                "text": pa.array([doc.page_content for doc in docs], pa.string()),
                "metadata": pa.array([json.dumps(doc.metadata) for doc in docs], pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), max(d, 1)),
            }).replace_schema_metadata({**meta, **extra})
        path = Path(folder_path) / f"{index_name}.arrow"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table_atomic(table, path)

    @classmethod
    def load_local(cls, folder_path: str | os.PathLike, embeddings: Embeddings,
                   index_name: str = "index", **kwargs: Any) -> "BioHashVectorStore":
        """A store from ``save_local``'s file; ``embeddings`` must be the model used to build it."""
        path = Path(folder_path) / f"{index_name}.arrow"
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        meta = table.schema.metadata or {}
        if meta.get(b"format") != FORMAT.encode() or meta.get(b"version") != str(
                FORMAT_VERSION).encode():
            raise ValueError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} file")
        config = json.loads(meta[b"config"])
        store = cls(embeddings, **{k: v for k, v in config.items() if k != "index_options"},
                    **config["index_options"])
        store._next_key = int(meta[b"next_key"])
        d = int(meta[b"dim"])
        if table.num_rows == 0:
            return store
        keys = table["key"].to_numpy()
        vectors = np.ascontiguousarray(table["vector"].combine_chunks().flatten().to_numpy(
            ).reshape(-1, d), dtype=np.float32)
        if b"biohash_index" in meta:
            base = deserialize_index(meta[b"biohash_index"])
            base.reset()           # keep the learned model; codes are rebuilt from the vectors
            store.index = BioHashIndexRefine(base, store._index_metric, config["k_factor"])
        else:
            store.index = store._flat_index(d)
        store.index.add_with_ids(vectors, keys)
        for id_, key, text, meta_json in zip(table["id"].to_pylist(), keys.tolist(),
                                             table["text"].to_pylist(),
                                             table["metadata"].to_pylist()):
            store._docs[key] = Document(id=id_, page_content=text, metadata=json.loads(meta_json))
            store._keys[id_] = key
        return store


def _metadata_filter(filter: dict | Callable | None) -> Callable[[dict], bool]:
    """A predicate on metadata: all (key, value) of a dict filter equal, or the callable."""
    if filter is None:
        return lambda metadata: True
    if callable(filter):
        return filter
    if isinstance(filter, dict):
        return lambda metadata: all(metadata.get(k) == v for k, v in filter.items())
    raise TypeError(f"filter must be a dict or a callable, got {type(filter).__name__}")
