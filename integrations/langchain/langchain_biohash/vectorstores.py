"""``BioHashVectorStore``: a LangChain vector store on BioHash codes with exact re-ranking.

A thin adapter over ``biohash_index.store.BioHashStore``, which holds the documents, the
search policy (exact until ``train_threshold`` documents, then ``k * k_factor`` BioHash
candidates re-ranked exactly, training without blocking searches), the metadata filters
and the Arrow files; see that module. This module maps LangChain's ``Document``,
``Embeddings`` and method names onto it.

Scores are distances, lower is better: cosine distance ``1 - cos`` or Euclidean distance.
``save_local`` and ``serialize_to_bytes`` write one Arrow IPC file; nothing is pickled, so
loading never runs code and needs no dangerous-deserialization flag.
"""
from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from biohash_index.store import (BioHashStore, Record, check_ids, check_positive_int,
                                 default_hash_length)

__all__ = ["BioHashVectorStore", "default_hash_length"]


class BioHashVectorStore(VectorStore):
    """Documents indexed by BioHash codes of their embeddings (see the module docstring).

    embedding: the LangChain embedding model; the other options are ``BioHashStore``'s:
    metric ("cosine" or "l2"), hash_length, n_hidden, activity, k_factor, train_threshold,
    and further ``BioHashIndex`` keywords (``seed``, ``epochs``, ``storage``, ...).
    """

    def __init__(self, embedding: Embeddings, *, metric: str = "cosine",
                 hash_length: int | None = None, n_hidden: int | None = None,
                 activity: float | None = None, k_factor: float = 10.0,
                 train_threshold: int | None = None, **index_options: Any):
        self.embedding = embedding
        self.store = BioHashStore(metric=metric, hash_length=hash_length, n_hidden=n_hidden,
                                  activity=activity, k_factor=k_factor,
                                  train_threshold=train_threshold, **index_options)

    # ---------------------------------------------------------------- properties
    @property
    def embeddings(self) -> Embeddings:
        return self.embedding

    @property
    def config(self) -> dict:
        return self.store.config

    @property
    def index(self):
        """The store's index: a faiss ``IndexIDMap2`` until trained, then a
        ``BioHashIndexRefine`` (None before the first add)."""
        return self.store.index

    @property
    def is_hashed(self) -> bool:
        """True once the BioHash index is trained and used for search."""
        return self.store.is_hashed

    @property
    def dim(self) -> int | None:
        return self.store.dim

    @property
    def hash_length(self) -> int | None:
        return self.store.hash_length

    @property
    def train_threshold(self) -> int | None:
        return self.store.train_threshold

    def __len__(self) -> int:
        return len(self.store)

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.config["metric"] == "cosine":
            return self._cosine_relevance_score_fn
        return self._euclidean_relevance_score_fn

    # ---------------------------------------------------------------- adding
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Embed and store texts; an existing id is replaced (upsert). Returns the ids.

        Everything is checked before the texts are embedded; a call that raises leaves the
        store as it was.
        """
        records = _records(list(texts), metadatas, ids)
        if not records:
            return []
        vectors = self.embedding.embed_documents([r.text for r in records])
        self.store.add(vectors, records)
        return [r.id for r in records]

    def add_embeddings(self, text_embeddings: Iterable[tuple[str, Sequence[float]]],
                       metadatas: list[dict] | None = None, *,
                       ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Store (text, embedding) pairs computed elsewhere; as ``add_texts`` otherwise."""
        pairs = list(text_embeddings)
        records = _records([text for text, _ in pairs], metadatas, ids)
        self.store.add([vector for _, vector in pairs], records)
        return [r.id for r in records]

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings,
                   metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                   **kwargs: Any) -> "BioHashVectorStore":
        """A new store (``kwargs`` are the constructor's options) holding these texts."""
        store = cls(embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_embeddings(cls, text_embeddings: Iterable[tuple[str, Sequence[float]]],
                        embedding: Embeddings, metadatas: list[dict] | None = None, *,
                        ids: list[str] | None = None, **kwargs: Any) -> "BioHashVectorStore":
        """A new store holding (text, embedding) pairs; ``embedding`` embeds later queries."""
        store = cls(embedding, **kwargs)
        store.add_embeddings(text_embeddings, metadatas, ids=ids)
        return store

    def merge_from(self, target: "BioHashVectorStore") -> None:
        """Add all of ``target``'s documents; refused (nothing added) when the metrics or
        dimensions differ or an id is in both stores."""
        if not isinstance(target, BioHashVectorStore):
            raise TypeError(f"target must be a BioHashVectorStore, got {type(target).__name__}")
        self.store.merge_from(target.store)

    def train(self) -> None:
        """Train a BioHash index on every stored vector and search through it from now on."""
        self.store.train()

    # ---------------------------------------------------------------- deleting and getting
    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Remove documents by id (unknown ids are ignored); ``None`` removes all."""
        if ids is None:
            self.store.clear()
        else:
            self.store.delete(ids)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Documents with these ids, in that order; unknown ids are skipped."""
        return [_document(r) for r in self.store.get(ids)]

    # ---------------------------------------------------------------- searching
    def similarity_search_with_score_by_vector(
            self, embedding: list[float], k: int = 4, filter: dict | Callable | None = None,
            fetch_k: int = 20, **kwargs: Any) -> list[tuple[Document, float]]:
        """k (document, distance) pairs nearest to an embedding, nearest first.

        filter: a metadata filter (``{"kind": "faq"}``, ``{"year": {"$gte": 2020}}``, ``$and``,
        ``$or``, ...; the README's list) or a predicate on the metadata; with a
        filter, ``max(fetch_k, k)`` nearest are fetched, and more while fewer than k match.
        """
        hits = self.store.search(embedding, k, filter=_on_metadata(filter), fetch_k=fetch_k)
        return [(_document(h.record), h.distance) for h in hits]

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
        k = check_positive_int(k, "k")
        hits = self.store.search(embedding, fetch_k, filter=_on_metadata(filter),
                                 fetch_k=fetch_k, with_vectors=True)
        if not hits:
            return []
        chosen = maximal_marginal_relevance(np.asarray(embedding, np.float32),
                                            np.stack([h.vector for h in hits]),
                                            lambda_mult=lambda_mult, k=k)
        return [_document(hits[i].record) for i in chosen]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                      lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        return self.max_marginal_relevance_search_by_vector(
            self.embedding.embed_query(query), k, fetch_k, lambda_mult, **kwargs)

    # ---------------------------------------------------------------- saving and loading
    def save_local(self, folder_path: str | os.PathLike, index_name: str = "index") -> None:
        """Write ``folder_path/index_name.arrow`` atomically (a failed save leaves the
        previous file intact); see ``BioHashStore.save``."""
        path = Path(folder_path) / f"{index_name}.arrow"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.store.save(path)

    @classmethod
    def load_local(cls, folder_path: str | os.PathLike, embeddings: Embeddings,
                   index_name: str = "index", **kwargs: Any) -> "BioHashVectorStore":
        """A store from ``save_local``'s file; ``embeddings`` must be the model used to build
        it. Raises ``BioHashFormatError`` (a ValueError) for a file that is not one."""
        return cls._wrap(BioHashStore.load(Path(folder_path) / f"{index_name}.arrow"),
                         embeddings)

    def serialize_to_bytes(self) -> bytes:
        """The store as bytes (the Arrow file ``save_local`` writes; no pickle)."""
        return self.store.to_bytes()

    @classmethod
    def deserialize_from_bytes(cls, serialized: bytes, embeddings: Embeddings,
                               **kwargs: Any) -> "BioHashVectorStore":
        """A store from ``serialize_to_bytes``. Parses Arrow and JSON only, so it needs no
        ``allow_dangerous_deserialization`` (accepted and ignored, as ``load_local``)."""
        return cls._wrap(BioHashStore.from_bytes(serialized), embeddings)

    @classmethod
    def _wrap(cls, store: BioHashStore, embeddings: Embeddings) -> "BioHashVectorStore":
        out = cls(embeddings)
        out.store = store
        return out


def _records(texts: list[str], metadatas: list[dict | None] | None,
             ids: list[str | None] | None) -> list[Record]:
    """Checked records (a uuid4 for each missing id, {} for missing metadata)."""
    metadatas = [None] * len(texts) if metadatas is None else list(metadatas)
    ids = [None] * len(texts) if ids is None else list(ids)
    if not len(metadatas) == len(ids) == len(texts):
        raise ValueError(f"texts, metadatas and ids must have the same length, got "
                         f"{len(texts)}, {len(metadatas)} and {len(ids)}")
    check_ids([i for i in ids if i is not None])
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__} at {i}")
    for i, meta in enumerate(metadatas):
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"metadatas[{i}] must be a dict or None, got {type(meta).__name__}")
    return [Record(str(uuid.uuid4()) if id_ is None else id_, text, dict(meta or {}))
            for id_, text, meta in zip(ids, texts, metadatas)]


def _document(record: Record) -> Document:
    return Document(id=record.id, page_content=record.text, metadata=record.metadata)


def _on_metadata(filter: dict | Callable | None):
    """A store filter: a dict as is, a callable on metadata as a predicate on records (given
    a copy, so it cannot change the stored metadata)."""
    if filter is None or isinstance(filter, dict):
        return filter
    if callable(filter):
        return lambda record: filter(copy.deepcopy(record.metadata))
    raise TypeError(f"filter must be a dict or a callable, got {type(filter).__name__}")
