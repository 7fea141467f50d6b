"""Scale-out with Dask (``pip install "biohash-index[dask]"``).

- ``encode``: codes of a dask array or dataframe, one task per block/partition
  (``map_blocks`` / ``map_partitions``); the small model is put into the graph once.
- ``train_on_sample``: train an index on a uniform sample drawn from the collection.
- ``build_shards``: one shard index per block/partition, saved with ``write_index`` (the
  package's format, docs/format.md) under a directory.
- ``ShardedIndex``: the shards loaded once into the workers' memory and searched as one
  index: a query batch fans out to every shard, the top-k lists are merged exactly
  (``topk``: results in (distance, id) order, identical to one index on all the data).

Data: a 2-D dask array of numbers, or a dask dataframe (``dd.read_parquet``) with a
list-of-numbers column of d values per row (``column``; the only list column by default),
optionally an integer ``ids_column``.
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pyarrow as pa
from distributed import Client, default_client

from .index import BioHashIndex
from .model import BioHashModel
from .persistence import read_index, write_index
from .streaming import read_block
from .topk import merge_topk, search_ordered
from .validation import check_positive_int, check_vectors

SHARD_NAME = "shard-{:05d}"


# ---------------------------------------------------------------------- encoding
def encode(model: BioHashIndex | BioHashModel, data, *, column: str | None = None) -> da.Array:
    """Codes of the vectors in ``data``: a lazy uint8 (n, code_size) dask array, one chunk per
    block of a dask array (``map_blocks``) or per partition of a dataframe (``map_partitions``,
    chunk lengths then unknown until computed)."""
    model = _trained_model(model)
    cs = model.params.code_size
    model_d = dask.delayed(model)  # one key in the graph, sent once to each worker
    if isinstance(data, da.Array):
        x = _check_array(data, model.params.d)
        return x.map_blocks(_encode_array_block, model_d, dtype=np.uint8,
                            chunks=(x.chunks[0], (cs,)))
    frame = _check_frame(data)
    return frame.map_partitions(_encode_partition, model_d, column,
                                meta=np.empty((0, cs), np.uint8))


def _encode_array_block(block: np.ndarray, model: BioHashModel) -> np.ndarray:
    return model.encode(check_vectors(block, model.params.d, "block"))


def _encode_partition(part, model: BioHashModel, column: str | None) -> np.ndarray:
    x, _ = _partition_block(part, model.params.d, column, None)
    return model.encode(x)


# ---------------------------------------------------------------------- training
def train_on_sample(index: BioHashIndex, data, n_sample: int, *, column: str | None = None,
                    seed: int = 0) -> int:
    """Train ``index`` on min(n_sample, n) vectors drawn uniformly without replacement from
    ``data``; returns the sample size. Only the sample travels to the client."""
    n_sample = check_positive_int(n_sample, "n_sample")
    parts, lengths = _parts(data, index.d, column, None, need_lengths=True)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(starts[-1], min(n_sample, starts[-1]), replace=False))
    bounds = np.searchsorted(picked, starts)
    tasks = [dask.delayed(_take_rows)(part, picked[lo:hi] - start)
             for part, start, lo, hi in zip(parts, starts, bounds[:-1], bounds[1:]) if hi > lo]
    sample = np.concatenate(dask.compute(*tasks))
    index.train(sample)
    return len(sample)


def _take_rows(block, rows: np.ndarray) -> np.ndarray:
    return block[0][rows]


# ---------------------------------------------------------------------- shards
def build_shards(index: BioHashIndex, data, directory, *, column: str | None = None,
                 ids_column: str | None = None) -> list[str]:
    """Write one shard index per block/partition of ``data`` into ``directory`` (which every
    worker must be able to write and read, e.g. a shared file system); returns the paths.

    index: trained and empty, the template of every shard (same model and storage kind).
    Ids come from ``ids_column``, or else are row numbers 0 .. n-1 of the whole collection
    (for a dataframe, its partition lengths are then computed first: one more read).
    """
    if not index.is_trained or index.ntotal:
        raise ValueError("index must be trained and empty: it is the template of every shard "
                         f"(is_trained={index.is_trained}, ntotal={index.ntotal})")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parts, lengths = _parts(data, index.d, column, ids_column, need_lengths=ids_column is None)
    starts = None if lengths is None else np.concatenate([[0], np.cumsum(lengths)])
    template = dask.delayed(index)
    tasks = [dask.delayed(_build_shard)(template, part, None if starts is None else starts[i],
                                        str(directory / SHARD_NAME.format(i)))
             for i, part in enumerate(parts)]
    return list(dask.compute(*tasks))


def _build_shard(template: BioHashIndex, block, start: int | None, path: str) -> str:
    x, ids = block
    shard = copy.deepcopy(template)
    if ids is None:
        ids = np.arange(start, start + len(x), dtype=np.int64)
    shard.add_with_ids(x, ids)
    write_index(shard, path)
    return path


class ShardedIndex:
    """Shard indexes held in the memory of a Dask cluster's workers, searched as one.

    paths: saved shard indexes (``build_shards``), readable by the workers; client: a
    ``distributed.Client`` (default: the current one). Every shard must share one model.
    """

    def __init__(self, paths, client: Client | None = None):
        self.client = client or default_client()
        self.paths = [str(p) for p in paths]
        if not self.paths:
            raise ValueError("paths must name at least one saved shard index")
        self.shards_ = [self.client.submit(read_index, p, pure=False) for p in self.paths]
        infos = self.client.gather([self.client.submit(_shard_info, s) for s in self.shards_])
        if len({info[1:] for info in infos}) != 1:
            raise ValueError("the shards were built with different models or storages")
        self.ntotal_per_shard = [info[0] for info in infos]
        self.model = self.client.submit(_shard_model, self.shards_[0]).result()

    @property
    def d(self) -> int:
        return self.model.params.d

    @property
    def ntotal(self) -> int:
        return sum(self.ntotal_per_shard)

    def search(self, xq, k: int):
        """k nearest stored vectors over all shards, in (distance, id) order.

        Returns D float32 (nq, k) Hamming distances and I int64 (nq, k) ids (I = -1 and
        D = 2**31 - 1 where fewer than k vectors are stored).
        """
        k = check_positive_int(k, "k")
        codes = self.model.encode(check_vectors(xq, self.d, "xq"))
        [codes_f] = self.client.scatter([codes], broadcast=True)
        results = self.client.gather([self.client.submit(_search_shard, s, codes_f, k)
                                      for s in self.shards_])
        D, I = merge_topk([r[0] for r in results], [r[1] for r in results], k)
        return D.astype(np.float32), I

    def close(self) -> None:
        """Release the shards from the workers' memory."""
        self.client.cancel(self.shards_)
        self.shards_ = []


def _shard_info(shard: BioHashIndex):
    m = shard.model
    digest = hashlib.sha256(m.weights_.tobytes() + m.mean_.tobytes()).hexdigest()
    return shard.ntotal, m.params, shard.storage.kind, digest


def _shard_model(shard: BioHashIndex) -> BioHashModel:
    return shard.model


def _search_shard(shard: BioHashIndex, codes: np.ndarray, k: int):
    return search_ordered(shard.storage, codes, k)


# ---------------------------------------------------------------------- collections
def _parts(data, d: int, column, ids_column, need_lengths: bool):
    """Delayed (x, ids) per block/partition, and the blocks' lengths (None if not needed)."""
    if isinstance(data, da.Array):
        if ids_column is not None:
            raise ValueError("ids_column applies to dataframes, not to a dask array")
        x = _check_array(data, d)
        parts = [dask.delayed(_array_block)(b, d) for b in x.to_delayed().ravel()]
        return parts, np.array(x.chunks[0])
    frame = _check_frame(data)
    parts = [dask.delayed(_partition_block)(p, d, column, ids_column)
             for p in frame.to_delayed()]
    lengths = np.array(frame.map_partitions(len).compute()) if need_lengths else None
    return parts, lengths


def _array_block(block: np.ndarray, d: int):
    return check_vectors(block, d, "block"), None


def _partition_block(part, d: int, column: str | None, ids_column: str | None):
    """(x, ids) of a pandas partition: its vector column through Arrow (``read_block``)."""
    if len(part) == 0:  # e.g. after a filter; its column types cannot be inferred
        return np.empty((0, d), np.float32), None if ids_column is None else np.empty(0, np.int64)
    if column is not None:
        part = part[[column] + ([ids_column] if ids_column else [])]
    batch = pa.RecordBatch.from_pandas(part, preserve_index=False)
    return read_block(batch, d, column, ids_column, "partition")


def _check_array(data: da.Array, d: int) -> da.Array:
    if data.ndim != 2 or data.shape[1] != d:
        raise ValueError(f"data must be a 2-D dask array of shape (n, {d}), got {data.shape}")
    return data.rechunk({1: -1})  # whole rows in each block


def _check_frame(data):
    if isinstance(data, dd.Series):
        return data.to_frame()
    if not isinstance(data, dd.DataFrame):
        raise TypeError("data must be a dask array, dataframe or series, "
                        f"got {type(data).__name__}")
    return data


def _trained_model(model) -> BioHashModel:
    if isinstance(model, BioHashIndex):
        model = model.model
    if not isinstance(model, BioHashModel):
        raise TypeError(f"model must be a BioHashIndex or BioHashModel, got {type(model).__name__}")
    if not model.is_trained:
        raise RuntimeError("the model is not trained: train it first (e.g. train_on_sample)")
    return model
