"""``BioHashVectorStore``: a LangChain vector store on BioHash codes with exact re-ranking.

A thin adapter over ``biohash_index.store.BioHashStore``, which holds the documents, the
search policy (exact until ``train_threshold`` documents, then ``k * k_factor`` BioHash
candidates re-ranked exactly, training without blocking searches), the metadata filters
and the Arrow files; see that module. This module maps LangChain's ``Document``,
``Embeddings`` and method names onto it.

Scores are distances, lower is better: cosine distance ``1 - cos`` or Euclidean distance;
relevance scores (``similarity_search_with_relevance_scores``) are ``(1 + cos) / 2`` and
``1 / (1 + distance)``, in [0, 1]. langchain-community's FAISS keywords are taken with their
meaning or refused naming ours (``faiss_metric``). ``save_local`` and ``serialize_to_bytes``
write one Arrow IPC file; nothing is pickled, so loading never runs code and needs no
dangerous-deserialization flag.
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
# langchain-community's FAISS: its DistanceStrategy values that have a metric here, and the
# constructor arguments that hold its own index and documents
DISTANCE_STRATEGIES = {"EUCLIDEAN_DISTANCE": "l2", "COSINE": "cosine"}
FAISS_STATE = ("index", "docstore", "index_to_docstore_id")


class BioHashVectorStore(VectorStore):
    """Documents indexed by BioHash codes of their embeddings (see the module docstring).

    embedding: the LangChain embedding model (``embedding_function=``, FAISS's name, works
    too); relevance_score_fn: distance -> relevance in [0, 1] for
    ``similarity_search_with_relevance_scores`` (None: see the module docstring), as FAISS;
    distance_strategy, normalize_L2: FAISS's way of choosing the metric (``faiss_metric``);
    the other options are ``BioHashStore``'s: metric ("cosine", the default, or "l2"),
    hash_length, n_hidden, activity, k_factor, train_threshold, and further
    ``BioHashIndex`` keywords (``seed``, ``epochs``, ``storage``, ...).
    """

    def __init__(self, embedding: Embeddings | None = None, *, metric: str | None = None,
                 hash_length: int | None = None, n_hidden: int | None = None,
                 activity: float | None = None, k_factor: float = 10.0,
                 train_threshold: int | None = None,
                 relevance_score_fn: Callable[[float], float] | None = None,
                 distance_strategy: Any = None, normalize_L2: bool = False,
                 embedding_function: Embeddings | None = None, **index_options: Any):
        for name in FAISS_STATE:
            if name in index_options:
                raise TypeError(f"{name}= holds the FAISS store's own index and documents; "
                                "BioHashVectorStore makes and keeps its own: create it with "
                                "BioHashVectorStore(embedding), from_texts or from_documents")
        if (embedding is None) == (embedding_function is None):
            raise TypeError("give the embedding model once: embedding= (or embedding_function=, "
                            "the FAISS store's name for it)")
        self.embedding = embedding if embedding is not None else embedding_function
        self.override_relevance_score_fn = relevance_score_fn
        self.store = BioHashStore(metric=_metric(metric, distance_strategy, normalize_L2),
                                  hash_length=hash_length, n_hidden=n_hidden, activity=activity,
                                  k_factor=k_factor, train_threshold=train_threshold,
                                  **index_options)

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
        """relevance_score_fn if given, else a map of the metric's distances onto [0, 1]:
        ``1 - d / 2`` = ``(1 + cos) / 2`` for cosine, ``1 / (1 + d)`` for Euclidean."""
        if self.override_relevance_score_fn is not None:
            return self.override_relevance_score_fn
        if self.config["metric"] == "cosine":
            return lambda d: min(1.0, max(0.0, 1.0 - d / 2.0))
        return lambda d: 1.0 / (1.0 + max(d, 0.0))

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
        """Remove documents by id; ``None`` removes all. Returns True when every id was
        stored (all are removed now), False when some were not (the others are removed):
        an unknown id is not an error, as LangChain's standard tests ask (FAISS raises
        ValueError)."""
        if ids is None:
            self.store.clear()
            return True
        ids = check_ids(ids)
        return self.store.delete(ids) == len(set(ids))

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
        kwargs: ``score_threshold``, the largest distance kept (as FAISS's for its distance
        strategies).
        """
        hits = self.store.search(embedding, k, filter=_on_metadata(filter), fetch_k=fetch_k)
        threshold = kwargs.get("score_threshold")
        return [(_document(h.record), h.distance) for h in hits
                if threshold is None or h.distance <= threshold]

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
        it. Raises ``BioHashFormatError`` (a ValueError) for a file that is not one.
        kwargs: FAISS's ``load_local`` keywords (``_wrap``)."""
        return cls._wrap(BioHashStore.load(Path(folder_path) / f"{index_name}.arrow"),
                         embeddings, **kwargs)

    def serialize_to_bytes(self) -> bytes:
        """The store as bytes (the Arrow file ``save_local`` writes; no pickle)."""
        return self.store.to_bytes()

    @classmethod
    def deserialize_from_bytes(cls, serialized: bytes, embeddings: Embeddings,
                               **kwargs: Any) -> "BioHashVectorStore":
        """A store from ``serialize_to_bytes``; kwargs as ``load_local``'s."""
        return cls._wrap(BioHashStore.from_bytes(serialized), embeddings, **kwargs)

    @classmethod
    def _wrap(cls, store: BioHashStore, embeddings: Embeddings, *,
              allow_dangerous_deserialization: bool = False, io_flags: int = 0,
              relevance_score_fn: Callable[[float], float] | None = None,
              distance_strategy: Any = None, normalize_L2: bool = False
              ) -> "BioHashVectorStore":
        """An adapter over a loaded store, with FAISS's loading keywords: loading parses
        Arrow and JSON only, so allow_dangerous_deserialization is not needed (accepted and
        ignored); io_flags (faiss.read_index's) must be 0; distance_strategy and
        normalize_L2 must ask for the saved store's metric; relevance_score_fn as the
        constructor's."""
        if io_flags:
            raise ValueError("io_flags are faiss.read_index's flags; the store is one Arrow "
                             "file, read as it is: leave io_flags out")
        out = cls(embeddings, metric=store.config["metric"], relevance_score_fn=relevance_score_fn,
                  distance_strategy=distance_strategy, normalize_L2=normalize_L2)
        out.store = store
        return out


def faiss_metric(distance_strategy: Any, normalize_L2: bool) -> str | None:
    """The metric that langchain-community FAISS's keywords ask for, None for neither.

    ``DistanceStrategy.EUCLIDEAN_DISTANCE`` is "l2" (distances are Euclidean here, squared
    in FAISS), with ``normalize_L2=True`` "cosine" (the same order: L2 between unit
    vectors; distances ``1 - cos`` here, ``2 - 2 cos`` in FAISS); ``COSINE`` is "cosine".
    Inner products of raw vectors (``MAX_INNER_PRODUCT``, ``DOT_PRODUCT``) and ``JACCARD``
    are not offered: a ValueError names the metric to use.
    """
    if distance_strategy is None:
        return "cosine" if normalize_L2 else None
    name = getattr(distance_strategy, "value", distance_strategy)
    if name not in DISTANCE_STRATEGIES:
        raise ValueError(f"distance_strategy {name!r} is not offered: use metric='cosine' "
                         "(the order of MAX_INNER_PRODUCT for normalized embeddings) or "
                         "metric='l2' (EUCLIDEAN_DISTANCE)")
    return "cosine" if normalize_L2 else DISTANCE_STRATEGIES[name]


def _metric(metric: str | None, distance_strategy: Any, normalize_L2: bool) -> str:
    """The store's metric: ``metric`` or what FAISS's keywords ask for (they must agree),
    "cosine" when none is given."""
    asked = faiss_metric(distance_strategy, normalize_L2)
    if metric is not None and asked not in (None, metric):
        raise ValueError(f"the store's metric is {metric!r} (a loaded store keeps the one it "
                         f"was saved with), distance_strategy / normalize_L2 ask for {asked!r}: "
                         "give one of them")
    return metric or asked or "cosine"


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
