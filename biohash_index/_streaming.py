"""Streaming sources: train and add from data that does not fit in memory.

A *source* is one of
- a 2-D array (numpy, or ``np.load(..., mmap_mode="r")`` for data on disk), read in row blocks;
- a ``pyarrow.Table`` or ``RecordBatch``, a ``pyarrow.dataset.Dataset``, or the path of a Parquet
  file or directory (``.arrow`` / ``.feather`` / ``.ipc``: Arrow IPC), read ``batch_size`` rows
  at a time; the vectors are a ``FixedSizeList<float32>`` column (``list<float>`` and other
  numeric lists are cast to it);
- an iterable of blocks (arrays, record batches or tables), e.g. a list, or a callable that
  returns a new such iterable each time it is called.

Training makes 1 + epochs passes over the data (``BioHashModel.train_blocks``), so it needs a
source that can be read again: a one-shot iterator (a generator, a ``RecordBatchReader``) is
refused. ``add_from`` reads once and accepts one.

Memory is bounded by the block size: rows are shuffled within each block between epochs, so
for data stored in some order (e.g. by class) use large blocks or shuffle on disk first.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from ._model import BioHashModel, BioHashParams
from ._sampling import uniform_sample
from ._validation import check_ids, check_positive_int, check_vectors

DEFAULT_BATCH_SIZE = 65536
IPC_SUFFIXES = (".arrow", ".feather", ".ipc")
MAX_ROUTER_SAMPLE = 1 << 18  # training vectors an IVF router with nlist=None samples (train_from)

Block = tuple[np.ndarray, "np.ndarray | None"]  # float32 (n, d) vectors, int64 (n,) ids or None


def train_from(source, params: BioHashParams, *, column: str | None = None,
               batch_size: int = DEFAULT_BATCH_SIZE,
               n_sample: int = 0) -> tuple[BioHashModel, np.ndarray | None]:
    """A model of ``params`` trained from a re-readable source, block by block, and a
    uniform sample of at most ``n_sample`` of its vectors, float32 (n, d), drawn in one
    more pass (``params.seed`` picks it; None when n_sample is 0), e.g. for IVF storage to
    learn its clusters from.
    """
    if is_one_shot(source):
        raise TypeError("source is a one-shot iterator (e.g. a generator), but training reads "
                        "the data 1 + epochs times: pass a callable that returns a new iterator, "
                        "a list of blocks, an array, or an Arrow/Parquet dataset")
    blocks = vector_blocks(source, params.d, column=column, batch_size=batch_size)
    model = BioHashModel(params).train_blocks(blocks)
    if not n_sample:
        return model, None
    return model, uniform_sample(blocks(), n_sample, np.random.default_rng(params.seed))


def add_from(index, source, *, column: str | None = None, ids_column: str | None = None,
             batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Add the vectors of ``source`` to ``index`` block by block; returns how many were added.

    ids_column: an integer column of an Arrow source holding the ids (``add_with_ids``);
    None numbers the vectors like ``add``.
    """
    n = 0
    for x, ids in blocks_with_ids(source, index.d, column, ids_column, batch_size)():
        if ids is None:
            index.add(x)
        else:
            index.add_with_ids(x, ids)
        n += len(x)
    return n


def vector_blocks(source, d: int, *, column: str | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> Callable[[], Iterator[np.ndarray]]:
    """A callable that starts a new pass over ``source`` and yields float32 (n_i, d) blocks,
    as ``BioHashModel.train_blocks`` takes it."""
    passes = blocks_with_ids(source, d, column, None, batch_size)
    return lambda: (x for x, _ in passes())


def blocks_with_ids(source, d: int, column: str | None = None, ids_column: str | None = None,
                    batch_size: int = DEFAULT_BATCH_SIZE) -> Callable[[], Iterator[Block]]:
    """A callable that starts a new pass over ``source`` and yields (x, ids) blocks: x float32
    (n_i, d), ids int64 (n_i,) read from ``ids_column`` (None when ids_column is None).

    A one-shot iterator gives one pass; asking for a second raises ``RuntimeError``.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    items = _item_passes(source, batch_size)

    def one_pass():
        for i, item in enumerate(items()):
            yield read_block(item, d, column, ids_column, f"block {i} of source")
    return one_pass


def is_one_shot(source) -> bool:
    """True for sources that can be read only once (generators, iterators, Arrow readers)."""
    return isinstance(source, (Iterator, pa.RecordBatchReader))


# ---------------------------------------------------------------------- reading sources
def _item_passes(source, batch_size: int) -> Callable[[], Iterable]:
    """A callable that starts a pass over the items (arrays, record batches) of ``source``."""
    if isinstance(source, (str, os.PathLike)):
        fmt = "ipc" if Path(source).suffix in IPC_SUFFIXES else "parquet"
        source = ds.dataset(source, format=fmt)
    if isinstance(source, ds.Dataset):
        # little readahead: memory stays a few batches (plus one Parquet row group)
        return lambda: source.to_batches(batch_size=batch_size, batch_readahead=1,
                                         fragment_readahead=1)
    if isinstance(source, pa.RecordBatch):
        source = pa.Table.from_batches([source])
    if isinstance(source, pa.Table):
        return lambda: source.to_batches(max_chunksize=batch_size)
    if isinstance(source, np.ndarray):
        return lambda: (source[s:s + batch_size] for s in range(0, len(source), batch_size))
    if is_one_shot(source):
        return _once(source)
    if callable(source):
        return lambda: _check_iterable(source(), "source()")
    return lambda: _check_iterable(source, "source")


def _once(iterator) -> Callable[[], Iterable]:
    used = False

    def first_pass():
        nonlocal used
        if used:
            raise RuntimeError("source is a one-shot iterator and was already read: pass a "
                               "callable that returns a new iterator, or a re-readable source")
        used = True
        return iterator
    return first_pass


def _check_iterable(items, name: str) -> Iterable:
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
        raise TypeError(f"{name} must be an iterable of arrays or Arrow record batches, "
                        f"got {type(items).__name__}")
    for item in items:
        if isinstance(item, pa.Table):
            yield from item.to_batches()
        else:
            yield item


def read_block(item, d: int, column: str | None, ids_column: str | None, name: str) -> Block:
    """(x, ids) of one item of a source: an array, or a record batch read through
    ``vector_column``, ``arrow_vectors`` and ``arrow_ids``."""
    if isinstance(item, pa.RecordBatch):
        col = vector_column(item.schema, column, ids_column)
        x = arrow_vectors(item.column(col), d, f"column {col!r}")
        ids = None if ids_column is None else arrow_ids(item.column(ids_column), ids_column)
        return x, ids
    if ids_column is not None:
        raise ValueError(f"ids_column={ids_column!r} needs Arrow data, but {name} is a "
                         f"{type(item).__name__}: use add_with_ids for arrays")
    return check_vectors(item, d, name), None


def vector_column(schema: pa.Schema, column: str | None, ids_column: str | None = None) -> str:
    """The name of the vector column: ``column``, or the only list-typed column when None."""
    if ids_column is not None and ids_column not in schema.names:
        raise ValueError(f"ids_column {ids_column!r} is not in the data; columns: {schema.names}")
    if column is not None:
        if column not in schema.names:
            raise ValueError(f"column {column!r} is not in the data; columns: {schema.names}")
        return column
    lists = [f.name for f in schema if is_list_type(f.type) and f.name != ids_column]
    if len(lists) != 1:
        raise ValueError(f"column=None needs exactly one list-typed column, found {lists} "
                         f"among {schema.names}: pass column=")
    return lists[0]


def arrow_vectors(arr: pa.Array | pa.ChunkedArray, d: int, name: str) -> np.ndarray:
    """float32 (n, d) from an Arrow list column of d numbers per row, or raise."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not is_list_type(arr.type) or not (pa.types.is_floating(arr.type.value_type)
                                          or pa.types.is_integer(arr.type.value_type)):
        raise TypeError(f"{name} must be a FixedSizeList<float32> (or list of numbers) column, "
                        f"got {arr.type}")
    if pa.types.is_fixed_size_list(arr.type) and arr.type.list_size != d:
        raise ValueError(f"{name} must hold {d} values per row (the index dimension d), "
                         f"got {arr.type.list_size}")
    if arr.null_count:
        raise ValueError(f"{name} contains {arr.null_count} null rows")
    try:  # the values keep their type: check_vectors converts them as it does numpy's
        arr = arr.cast(pa.list_(arr.type.value_type, d))
    except pa.ArrowInvalid:
        raise ValueError(f"{name} must hold {d} values per row (the index dimension d); "
                         "some rows have another length") from None
    values = arr.flatten()  # respects the array's offset, unlike .values
    if values.null_count:
        raise ValueError(f"{name} contains null values")
    return check_vectors(values.to_numpy().reshape(len(arr), d), d, name)


def arrow_ids(arr: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray:
    """int64 (n,) ids from an Arrow integer column without nulls, or raise."""
    if arr.null_count:
        raise ValueError(f"ids column {name!r} contains {arr.null_count} nulls")
    return check_ids(arr.to_numpy(), len(arr), f"ids column {name!r}")


def is_list_type(t: pa.DataType) -> bool:
    """Whether ``t`` is an Arrow list type: fixed-size, variable or large."""
    return pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t)
