"""The store format ("biohash-store", version 1): a ``BioHashStore`` in one Arrow IPC file
(docs/format.md).

A row per document: ``id`` (string), ``key`` (int64, its id in the faiss indexes), ``text``
(string), ``metadata`` and ``extra`` (JSON objects as strings), ``vector``
(fixed_size_list<float32>[dim]). The schema metadata holds ``format``, ``version`` ("1"),
``dim`` (0 before the first add), ``next_key``, ``config`` (the store's options as JSON) and,
once the store is hashed, ``biohash_index``: the trained index in the tar form of the index
format, codes included, which loading keeps (checked against the keys) rather than encoding
the vectors again.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa

from .._validation import check_json
from ._io import BioHashFormatError, ipc_bytes, parse_json, read_ipc, source_buffer
from .index import IndexState, deserialize_state, serialize_state

FORMAT_NAME = "biohash-store"
FORMAT_VERSION = 1
READS_VERSIONS = (1,)
TYPES = {"id": pa.string(), "key": pa.int64(), "text": pa.string(),
         "metadata": pa.string(), "extra": pa.string()}   # and vector, by dim
CONFIG = ("metric", "hash_length", "n_hidden", "activity", "k_factor", "train_threshold",
          "index_options")   # the keys of ``config``: BioHashStore's options


@dataclasses.dataclass(frozen=True, eq=False)
class StoreState:
    """Everything a saved ``BioHashStore`` holds, checked (``decode_table``)."""
    config: dict              # the store's options (CONFIG)
    dim: int                  # the embedding dimension, 0 before the first add
    next_key: int             # the key the next document gets
    ids: list[str]            # the documents, in the order of their keys ...
    texts: list[str]
    metadata: list[dict]
    extra: list[dict]
    keys: np.ndarray          # int64 (n,)
    vectors: np.ndarray       # float32 (n, max(dim, 1))
    base: IndexState | None   # the trained BioHash index, None until the store is hashed


def store_table(state: StoreState) -> pa.Table:
    """The store as an Arrow table (its file is this table, ``encode_store``)."""
    meta = {"format": FORMAT_NAME, "version": str(FORMAT_VERSION), "dim": str(state.dim),
            "next_key": str(state.next_key), "config": json.dumps(state.config)}
    if state.base is not None:
        meta["biohash_index"] = serialize_state(state.base)
    return pa.table({
        "id": pa.array(state.ids, pa.string()),
        "key": pa.array(state.keys, pa.int64()),
        "text": pa.array(state.texts, pa.string()),
        "metadata": pa.array([json.dumps(m) for m in state.metadata], pa.string()),
        "extra": pa.array([json.dumps(e) for e in state.extra], pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(state.vectors.ravel()),
                                                    max(state.dim, 1)),
    }).replace_schema_metadata(meta)


def encode_store(state: StoreState) -> bytes:
    return ipc_bytes(store_table(state))


def decode_store(source, name: str = "bytes") -> StoreState:
    """The state in a store file (a path or bytes; ``name`` names bytes in errors), checked;
    BioHashFormatError naming the file and the part otherwise."""
    buf, name = source_buffer(source, name)
    return decode_table(read_ipc(buf, name), name)


def decode_table(table: pa.Table, name: str) -> StoreState:
    """The state in ``store_table``'s table, checked: the format, every column's type,
    no nulls, every row's JSON, distinct ids and keys below next_key, finite vectors, and
    the BioHash index's dimension and ids."""
    meta = table.schema.metadata or {}
    if meta.get(b"format") != FORMAT_NAME.encode() or meta.get(b"version") not in [
            str(v).encode() for v in READS_VERSIONS]:
        raise BioHashFormatError(f"{name}: not a {FORMAT_NAME} file of version "
                                 f"{READS_VERSIONS} (format {meta.get(b'format')!r}, version "
                                 f"{meta.get(b'version')!r})")
    dim, next_key = (_count(meta, key, name) for key in (b"dim", b"next_key"))
    config = parse_json(meta.get(b"config", b""), f"{name}: config")
    if not isinstance(config, dict) or sorted(config) != sorted(CONFIG) or not isinstance(
            config["index_options"], dict):
        raise BioHashFormatError(f"{name}: config: must be an object of {CONFIG} "
                                 "(index_options an object)")
    types = {**TYPES, "vector": pa.list_(pa.float32(), max(dim, 1))}
    if table.schema.names != list(types):
        raise BioHashFormatError(f"{name}: columns {table.schema.names}, expected {list(types)}")
    cols = {column: _column(table, column, kind, name) for column, kind in types.items()}
    ids, texts = cols["id"].to_pylist(), cols["text"].to_pylist()
    keys = cols["key"].to_numpy(zero_copy_only=True)
    vectors = cols["vector"].flatten().to_numpy(zero_copy_only=True).reshape(-1, max(dim, 1))
    metadata, extra = ([_json_object(v, f"{name}: row {i}", column)
                        for i, v in enumerate(cols[column].to_pylist())]
                       for column in ("metadata", "extra"))
    if len(ids) and not dim:
        raise BioHashFormatError(f"{name}: dim: 0, but the store holds {len(ids)} rows")
    if len(set(ids)) != len(ids):
        raise BioHashFormatError(f"{name}: column 'id': repeated ids")
    if len(np.unique(keys)) != len(keys) or (len(keys) and (keys.min() < 0
                                                            or keys.max() >= next_key)):
        raise BioHashFormatError(f"{name}: column 'key': keys must be distinct, >= 0 and "
                                 f"below next_key={next_key}")
    if not np.isfinite(vectors).all():
        raise BioHashFormatError(f"{name}: column 'vector': holds NaN or infinite values")
    base = None
    if b"biohash_index" in meta:
        base = deserialize_state(meta[b"biohash_index"], f"{name}: biohash_index")
        if base.params.d != dim or base.weights is None:
            raise BioHashFormatError(f"{name}: biohash_index: must be a trained index of "
                                     f"d={dim} (the vectors'), got d={base.params.d}, "
                                     f"trained={base.weights is not None}")
        if not np.array_equal(np.sort(base.storage.ids()), np.sort(keys)):
            raise BioHashFormatError(f"{name}: biohash_index: holds the codes of other keys "
                                     "than the rows'")
    return StoreState(config, dim, next_key, ids, texts, metadata, extra, keys, vectors, base)


def _count(meta: dict, key: bytes, name: str) -> int:
    """An integer >= 0 of the schema metadata."""
    value = meta.get(key, b"")
    if not value.isdigit():
        raise BioHashFormatError(f"{name}: {key.decode()}: must be an integer >= 0, "
                                 f"got {value[:40]!r}")
    return int(value)


def _column(table: pa.Table, column: str, kind: pa.DataType, name: str) -> pa.Array:
    """The whole of ``column``, checked to be of type ``kind`` without nulls."""
    col = table.column(column).combine_chunks()
    if col.type != kind:
        raise BioHashFormatError(f"{name}: column {column!r}: {col.type}, expected {kind}")
    if col.null_count or (pa.types.is_fixed_size_list(kind) and col.flatten().null_count):
        raise BioHashFormatError(f"{name}: column {column!r}: holds nulls")
    return col


def _json_object(text: str, row: str, column: str) -> dict:
    """A row's metadata or extra: a JSON object that survives JSON (``check_json``)."""
    value = parse_json(text, f"{row}: {column}")
    try:
        if not isinstance(value, dict):
            raise TypeError(f"{column} must be a JSON object, got {type(value).__name__}")
        check_json(value, column)
    except (TypeError, ValueError) as e:
        raise BioHashFormatError(f"{row}: {e}") from None
    return value
