"""``BioHashVectorStore``: a LlamaIndex vector store on BioHash codes with exact re-ranking.

A thin adapter over ``biohash_index.store.BioHashStore``, which holds the nodes, the search
policy (exact until ``train_threshold`` nodes, then ``k * k_factor`` BioHash candidates
re-ranked exactly, training without blocking queries), the metadata filters and the Arrow
files; see that module. This module maps LlamaIndex's nodes, ``VectorStoreQuery`` and
``MetadataFilters`` onto it.

A node is stored as a record: its id, its text, its metadata (filterable; it must survive
JSON) and, as extra data, its ref_doc_id and the rest of the node (relationships, templates,
...) as LlamaIndex's own JSON. Similarities: the cosine for "cosine", ``1 / (1 + d)`` for
the Euclidean distance d with "l2" (higher is nearer in both).
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import fsspec
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    DEFAULT_PERSIST_DIR,
    DEFAULT_PERSIST_FNAME,
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from biohash_index.store import BioHashStore, Hit, Record, compile_filter

NAMESPACE_SEP = "__"
DEFAULT_NAMESPACE = "default"
ARROW_MAGIC = b"ARROW1"   # the first bytes of an Arrow IPC file
OPERATORS = {  # LlamaIndex's FilterOperator -> the engine's filter operator
    FilterOperator.EQ: "$eq", FilterOperator.NE: "$ne", FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte", FilterOperator.LT: "$lt", FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in", FilterOperator.NIN: "$nin", FilterOperator.ANY: "$any",
    FilterOperator.ALL: "$all", FilterOperator.CONTAINS: "$contains",
    FilterOperator.TEXT_MATCH: "$text_match",
    FilterOperator.TEXT_MATCH_INSENSITIVE: "$text_match_insensitive",
    FilterOperator.IS_EMPTY: "$is_empty",
}


class BioHashVectorStore(BasePydanticVectorStore):
    """Nodes indexed by BioHash codes of their embeddings (see the module docstring).

    The options are ``BioHashStore``'s: metric ("cosine" or "l2"), hash_length, n_hidden,
    activity, k_factor, train_threshold, and further ``BioHashIndex`` keywords (``seed``,
    ``epochs``, ``storage``, ...). ``store``: an existing ``BioHashStore`` to wrap instead.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    _store: BioHashStore = PrivateAttr()

    def __init__(self, store: Optional[BioHashStore] = None, **options: Any) -> None:
        if store is not None and options:
            raise TypeError("give either a store or the options of a new one, not both")
        if store is not None and not isinstance(store, BioHashStore):
            raise TypeError(f"store must be a BioHashStore, got {type(store).__name__}")
        super().__init__()
        self._store = store if store is not None else BioHashStore(**options)

    @classmethod
    def class_name(cls) -> str:
        return "BioHashVectorStore"

    @property
    def client(self) -> BioHashStore:
        """The ``BioHashStore`` engine behind this store."""
        return self._store

    @property
    def is_hashed(self) -> bool:
        """True once the BioHash index is trained and used for search."""
        return self._store.is_hashed

    # ---------------------------------------------------------------- adding
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Store nodes with their embeddings (a stored node id is replaced); returns the ids.

        All nodes are checked first: a call that raises leaves the store as it was.
        """
        nodes = list(nodes)
        records = [_record(node, i) for i, node in enumerate(nodes)]
        vectors = [_embedding(node, i) for i, node in enumerate(nodes)]
        self._store.add(vectors, records)
        return [r.id for r in records]

    def train(self) -> None:
        """Train a BioHash index on every stored vector and search through it from now on."""
        self._store.train()

    # ---------------------------------------------------------------- deleting and getting
    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Remove every node of the document ``ref_doc_id``."""
        if not isinstance(ref_doc_id, str):
            raise TypeError(f"ref_doc_id must be a string, got {type(ref_doc_id).__name__}")
        self._store.delete([r.id for r in self._store.get(filter=_of_documents([ref_doc_id]))])

    def delete_nodes(self, node_ids: Optional[List[str]] = None,
                     filters: Optional[MetadataFilters] = None, **delete_kwargs: Any) -> None:
        """Remove the nodes with these ids that match ``filters`` (at least one is needed;
        ``clear()`` removes all)."""
        if node_ids is None and filters is None:
            raise ValueError("delete_nodes needs node_ids or filters (clear() removes all)")
        self._store.delete([r.id for r in self._store.get(node_ids, _to_filter(filters))])

    def get_nodes(self, node_ids: Optional[List[str]] = None,
                  filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        """The nodes with these ids (all if None; in that order) that match ``filters``."""
        return [_node(r) for r in self._store.get(node_ids, _to_filter(filters))]

    def clear(self) -> None:
        """Remove every node (a trained BioHash model stays)."""
        self._store.clear()

    # ---------------------------------------------------------------- querying
    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nodes nearest to ``query.query_embedding`` among those
        matching ``query.filters``, ``query.doc_ids`` (ref_doc_ids) and ``query.node_ids``
        (an empty list restricts nothing: VectorStoreIndex's retriever passes ``[]``).

        kwargs: ``fetch_k``, the candidates fetched before filtering (default 20; more are
        fetched while fewer than similarity_top_k match).
        """
        if query.mode != VectorStoreQueryMode.DEFAULT:
            raise ValueError(f"query mode {query.mode.value!r} is not supported, only "
                             f"{VectorStoreQueryMode.DEFAULT.value!r}")
        if query.query_embedding is None:
            raise ValueError("query.query_embedding is needed (this store searches embeddings)")
        match = _to_filter(query.filters)
        if query.doc_ids:
            match = _both(_of_documents(query.doc_ids), match)
        hits = self._store.search(query.query_embedding, query.similarity_top_k, filter=match,
                                  ids=query.node_ids or None, fetch_k=kwargs.get("fetch_k", 20))
        return VectorStoreQueryResult(nodes=[_node(h.record) for h in hits],
                                      similarities=[self._similarity(h) for h in hits],
                                      ids=[h.record.id for h in hits])

    def _similarity(self, hit: Hit) -> float:
        if self._store.config["metric"] == "cosine":
            return 1.0 - hit.distance
        return 1.0 / (1.0 + hit.distance)

    # ---------------------------------------------------------------- async: in a worker thread
    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> List[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    async def adelete_nodes(self, node_ids: Optional[List[str]] = None,
                            filters: Optional[MetadataFilters] = None,
                            **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    async def aget_nodes(self, node_ids: Optional[List[str]] = None,
                         filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    async def aclear(self) -> None:
        await asyncio.to_thread(self.clear)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    # ---------------------------------------------------------------- saving and loading
    def persist(self, persist_path: str = str(Path(DEFAULT_PERSIST_DIR) /
                                              f"{DEFAULT_NAMESPACE}{NAMESPACE_SEP}"
                                              f"{DEFAULT_PERSIST_FNAME}"),
                fs: Optional[fsspec.AbstractFileSystem] = None) -> None:
        """Write the store as one Arrow IPC file (``BioHashStore.save``).

        For the ``.json`` name LlamaIndex chooses (``storage/default__vector_store.json``)
        the Arrow file is ``default__vector_store.arrow`` beside it (``arrow_path``), and
        the ``.json`` file holds a note that makes LlamaIndex's own loader, reached by
        ``StorageContext.from_defaults(persist_dir=...)`` without ``vector_store=``, fail with
        a message naming ``from_persist_dir`` (``reload_note``). On the local disk the writes
        are atomic (a failed save leaves the previous file intact); through another fsspec
        filesystem the bytes are written with ``fs.open``.
        """
        arrow, open_ = arrow_path(persist_path), _opener(fs)
        if _is_local(fs):
            Path(arrow).parent.mkdir(parents=True, exist_ok=True)
            self._store.save(arrow)
        else:
            with open_(arrow, "wb") as f:
                f.write(self._store.to_bytes())
        if arrow != persist_path:   # after the Arrow file: until then the previous store loads
            with open_(persist_path, "wb") as f:
                f.write(reload_note(persist_path))

    @classmethod
    def from_persist_path(cls, persist_path: str,
                          fs: Optional[fsspec.AbstractFileSystem] = None
                          ) -> "BioHashVectorStore":
        """A store from ``persist``'s file (Arrow and JSON only, nothing executed): the
        path ``persist`` was given, or its Arrow file; a ``.json`` path that holds the Arrow
        file itself (as persisted by earlier versions) loads too. Raises
        ``BioHashFormatError`` (a ValueError) for a file that is not one."""
        open_, local = _opener(fs), _is_local(fs)
        if local and (Path(persist_path).is_symlink() or not Path(persist_path).is_file()):
            return cls(BioHashStore.load(persist_path))   # its error names what the path is
        with open_(persist_path, "rb") as f:
            arrow = f.read(len(ARROW_MAGIC)) == ARROW_MAGIC
        path = persist_path if arrow else arrow_path(persist_path)
        if local:
            return cls(BioHashStore.load(path))
        with open_(path, "rb") as f:
            return cls(BioHashStore.from_bytes(f.read()))

    @classmethod
    def from_persist_dir(cls, persist_dir: str = DEFAULT_PERSIST_DIR,
                         namespace: str = DEFAULT_NAMESPACE,
                         fs: Optional[fsspec.AbstractFileSystem] = None
                         ) -> "BioHashVectorStore":
        """The store that ``StorageContext.persist(persist_dir)`` saved under ``namespace``."""
        name = f"{namespace}{NAMESPACE_SEP}{DEFAULT_PERSIST_FNAME}"
        path = str(Path(persist_dir) / name) if _is_local(fs) else f"{persist_dir}/{name}"
        return cls.from_persist_path(path, fs)


def arrow_path(persist_path: str) -> str:
    """Where ``persist`` writes the Arrow file for ``persist_path``: beside it, with the
    suffix .arrow, if it ends in .json (a name LlamaIndex's own loader reads as JSON);
    ``persist_path`` itself otherwise."""
    return persist_path[:-len(".json")] + ".arrow" if persist_path.endswith(".json") else (
        persist_path)


def reload_note(persist_path: str) -> bytes:
    """The ``.json`` file beside the Arrow file: JSON that LlamaIndex's SimpleVectorStore
    loader refuses with this text in its error (a string where it expects an embedding's
    floats), saying how to load the directory."""
    folder = str(Path(persist_path).parent)
    namespace = Path(persist_path).name.split(NAMESPACE_SEP)[0]
    where = f"{folder!r}" + ("" if namespace == DEFAULT_NAMESPACE else
                             f", namespace={namespace!r}")
    text = (f"This folder holds a BioHashVectorStore (the Arrow file "
            f"{Path(arrow_path(persist_path)).name}), not LlamaIndex's SimpleVectorStore: "
            "load it with StorageContext.from_defaults(vector_store=BioHashVectorStore."
            f"from_persist_dir({where}), persist_dir={folder!r})")
    return json.dumps({"embedding_dict": {"BioHashVectorStore": [text]}}, indent=1).encode()


# -------------------------------------------------------------------- nodes <-> records
def _record(node: BaseNode, i: int) -> Record:
    """The record of a node: id, text, metadata, and the rest of the node in ``extra``."""
    if not isinstance(node, BaseNode):
        raise TypeError(f"nodes[{i}] must be a llama_index BaseNode, got {type(node).__name__}")
    saved = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
    extra = {"node_content": saved["_node_content"], "node_type": saved["_node_type"],
             "ref_doc_id": node.ref_doc_id}
    return Record(node.node_id, node.get_content(metadata_mode=MetadataMode.NONE),
                  dict(node.metadata), extra)


def _embedding(node: BaseNode, i: int) -> List[float]:
    if node.embedding is None:
        raise ValueError(f"nodes[{i}] ({node.node_id}) has no embedding: embed the nodes "
                         "first (VectorStoreIndex does)")
    return node.embedding


def _node(record: Record) -> BaseNode:
    """The node of a record; a plain TextNode for records another adapter wrote."""
    extra = record.extra
    if "node_content" not in extra:
        return TextNode(id_=record.id, text=record.text, metadata=record.metadata)
    node = metadata_dict_to_node({"_node_content": extra["node_content"],
                                  "_node_type": extra["node_type"]}, text=record.text)
    node.metadata = record.metadata
    return node


# -------------------------------------------------------------------- filters
def _to_filter(filters: Optional[MetadataFilters]) -> Optional[dict]:
    """LlamaIndex ``MetadataFilters`` as the engine's filter (``biohash_index.store.
    compile_filter``), checked now, so that a bad filter fails before any search."""
    if filters is None:
        return None
    if not isinstance(filters, MetadataFilters):
        raise TypeError(f"filters must be MetadataFilters, got {type(filters).__name__}")
    spec = _spec(filters)
    compile_filter(spec)
    return spec


def _spec(filters: MetadataFilters) -> dict:
    parts = [_spec(f) if isinstance(f, MetadataFilters) else _clause(f) for f in filters.filters]
    if not parts:
        return {}
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.AND:
        return {"$and": parts}
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:      # none of them matches
        return {"$not": {"$or": parts}}
    raise ValueError(f"filter condition {condition!r} is not supported")


def _clause(f: MetadataFilter) -> dict:
    if f.operator not in OPERATORS:
        raise ValueError(f"filter operator {f.operator!r} is not supported")
    value = True if f.operator == FilterOperator.IS_EMPTY else f.value
    return {f.key: {OPERATORS[f.operator]: value}}


def _of_documents(ref_doc_ids: Sequence[str]) -> Callable[[Record], bool]:
    wanted = set(ref_doc_ids)
    return lambda record: record.extra.get("ref_doc_id") in wanted


def _both(first: Callable[[Record], bool], spec: Optional[dict]) -> Callable[[Record], bool]:
    if spec is None:
        return first
    second = compile_filter(spec)
    return lambda record: first(record) and second(record.metadata)


def _opener(fs: Optional[fsspec.AbstractFileSystem]) -> Callable:
    """``open`` for the local disk, else ``fs.open``."""
    return open if _is_local(fs) else fs.open


def _is_local(fs: Optional[fsspec.AbstractFileSystem]) -> bool:
    return fs is None or "file" in (fs.protocol if isinstance(fs.protocol, tuple)
                                    else (fs.protocol,))
