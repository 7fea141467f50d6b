"""The refine format ("biohash-index-refine", version 2): a ``BioHashIndexRefine`` in one
Arrow IPC file (docs/format.md).

A row per stored vector, columns ``id`` (int64) and ``vector`` (fixed_size_list<float32>[d]);
the schema metadata holds ``format``, ``version`` ("2"), ``metric`` ("l2" or "ip"),
``k_factor``, ``next_id`` and ``base``: the base index in the tar form of the index format,
codes included. Version 1 is the same file without ``version`` (biohash-index 0.1).

Loading keeps the base's codes as they were saved (checked against the model's code size by
the index format, and against the ids here), rather than encoding the vectors again; the
vectors stay read-only views of the file.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa

from ._io import BioHashFormatError, ipc_bytes, read_ipc, source_buffer
from .index import IndexState, deserialize_state, serialize_state

FORMAT_NAME = "biohash-index-refine"
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)   # 1: files written before the format had a version, no "version"
METRICS = ("l2", "ip")
KEYS = (b"format", b"metric", b"k_factor", b"next_id", b"base")


@dataclasses.dataclass(frozen=True, eq=False)
class RefineState:
    """Everything a saved ``BioHashIndexRefine`` holds, checked (``refine_problem``)."""
    base: IndexState          # the base index, its codes included
    metric: str               # "l2" or "ip"
    k_factor: float           # candidates per result, >= 1
    next_id: int              # the id ``add`` gives next
    ids: np.ndarray           # int64 (n,), the ids of the base's codes
    vectors: np.ndarray       # float32 (n, d), the vectors of those ids


def refine_problem(state: RefineState) -> tuple[str, str] | None:
    """(part, what is wrong) for the first thing a load would refuse, or None."""
    if state.metric not in METRICS:
        return "metric", f"must be one of {METRICS}, got {state.metric!r}"
    if not (math.isfinite(state.k_factor) and state.k_factor >= 1):
        return "k_factor", f"must be a finite number >= 1, got {state.k_factor}"
    d = state.base.params.d
    if state.vectors.shape != (len(state.ids), d):
        return "vector", f"{state.vectors.shape} vectors for {len(state.ids)} ids of d={d}"
    if not np.isfinite(state.vectors).all():
        return "vector", "holds NaN or infinite values"
    ids = np.sort(state.ids)   # the base's ids are distinct: so are these if they are equal
    if not np.array_equal(ids, np.sort(state.base.storage.ids())):
        return "id", "the vectors' ids are not those of the base index's codes"
    if state.next_id < 0 or (len(ids) and state.next_id <= ids[-1]):
        return "next_id", f"next_id={state.next_id} must exceed every stored id"
    return None


def encode_refine(state: RefineState) -> bytes:
    """The bytes of the refine file of ``state``; ValueError if a load would refuse it."""
    problem = refine_problem(state)
    if problem:
        raise ValueError(f"cannot save the index: {problem[0]}: {problem[1]}")
    table = pa.table({"id": pa.array(state.ids, pa.int64()),
                      "vector": pa.FixedSizeListArray.from_arrays(
                          pa.array(state.vectors.ravel()), state.base.params.d)})
    return ipc_bytes(table.replace_schema_metadata({
        "format": FORMAT_NAME, "version": str(FORMAT_VERSION), "metric": state.metric,
        "k_factor": repr(state.k_factor), "next_id": str(state.next_id),
        "base": serialize_state(state.base)}))


def decode_refine(source, name: str = "refine file") -> RefineState:
    """The state in a refine file (a path or bytes; ``name`` names bytes in errors),
    checked; BioHashFormatError naming the file and the part otherwise."""
    buf, name = source_buffer(source, name)
    table = read_ipc(buf, name)
    meta = table.schema.metadata or {}
    if meta.get(b"format") != FORMAT_NAME.encode():
        raise BioHashFormatError(f"{name}: not a {FORMAT_NAME} file (format "
                                 f"{meta.get(b'format')!r})")
    version = meta.get(b"version", b"1")
    if version not in [str(v).encode() for v in READS_VERSIONS]:
        raise BioHashFormatError(f"{name}: format version {version!r}, this library reads "
                                 f"{READS_VERSIONS}")
    missing = [k.decode() for k in KEYS if k not in meta]
    if missing:
        raise BioHashFormatError(f"{name}: metadata: no {missing}")
    base = deserialize_state(meta[b"base"], f"{name}: base")
    d = base.params.d
    if (table.schema.names, table.schema.types) != (
            ["id", "vector"], [pa.int64(), pa.list_(pa.float32(), d)]):
        raise BioHashFormatError(f"{name}: columns {table.schema.names} of types "
                                 f"{table.schema.types}, expected id int64 and vector "
                                 f"fixed_size_list<float>[{d}] (the base index's d)")
    ids, vectors = _column(table, "id", name), _column(table, "vector", name)
    try:
        state = RefineState(base, meta[b"metric"].decode(), float(meta[b"k_factor"]),
                            int(meta[b"next_id"]), ids.to_numpy(zero_copy_only=True),
                            vectors.flatten().to_numpy(zero_copy_only=True).reshape(-1, d))
    except (UnicodeDecodeError, ValueError) as e:
        raise BioHashFormatError(f"{name}: metadata: {e}") from None
    problem = refine_problem(state)
    if problem:
        raise BioHashFormatError(f"{name}: {problem[0]}: {problem[1]}")
    return state


def _column(table: pa.Table, column: str, name: str) -> pa.Array:
    """The whole of ``column``, checked to hold no nulls (at any level)."""
    col = table.column(column).combine_chunks()
    if col.null_count or (pa.types.is_fixed_size_list(col.type) and col.flatten().null_count):
        raise BioHashFormatError(f"{name}: column {column!r}: holds nulls")
    return col
