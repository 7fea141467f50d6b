"""Scale-out with Dask (``pip install "biohash-index[dask]"``).

- ``encode``: codes of a dask array or dataframe, one task per block/partition
  (``map_blocks`` / ``map_partitions``); the small model is put into the graph once.
- ``train_on_sample``: train an index on a uniform sample drawn from the collection.
- ``ShardedIndex``: an index kept as shard files in a directory all workers share
  (``_formats.shards``: a manifest with each shard's checksum and the model's digest), each
  shard loaded into one worker's memory and searched as one index: a query batch travels
  once to each worker, as one task that searches every shard the worker holds and merges
  their shortlists; the client merges the workers' (exactly, ``_search``: the same answer as
  one index holding all the data; docs/scaling.md). It can be reopened
  (``open``), grown (``add``, ``add_with_ids``, ``add_from``) and shrunk (``remove_ids``).
- ``build_shards``: a new ``ShardedIndex`` with one shard per block/partition of a collection.

Data: a 2-D dask array of numbers, or a dask dataframe (``dd.read_parquet``) with a
list-of-numbers column of d values per row (``column``; the only list column by default),
optionally an integer ``ids_column``.
"""
from __future__ import annotations

import copy
import functools
import secrets
import threading

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pyarrow as pa
from dask.sizeof import sizeof
from distributed import Client, as_completed, default_client, wait
from distributed import TimeoutError as DaskTimeoutError

from ._faiss_compat import search_options
from ._formats import shards as sm
from ._id_set import IdSet
from ._index import BioHashIndex
from ._model import BioHashModel
from ._search import (best, encode_queries, merge_shortlists, shortlist, shortlist_size,
                      sort_ranges)
from ._search import range_search as range_search_storage
from ._streaming import read_block
from ._validation import (check_ids, check_k, check_new_ids, check_positive_int, check_real,
                          check_vectors, next_ids)

DEFAULT_TIMEOUT = 600.0  # seconds a search or a shard load may take before it is an error
FAN_IN = 8               # workers' results merged per task: on the client up to FAN_IN
                         # workers, beyond them first in a tree of tasks on the workers
__all__ = ["encode", "train_on_sample", "build_shards", "ShardedIndex"]
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
def build_shards(index: BioHashIndex, data, directory, client: Client | None = None, *,
                 column: str | None = None, ids_column: str | None = None,
                 timeout: float | None = DEFAULT_TIMEOUT) -> "ShardedIndex":
    """A new sharded index in ``directory`` (new or empty, shared by all workers) with one
    shard per block/partition of ``data``: ``ShardedIndex.create`` then ``add_from``.

    index: trained and empty, the template of every shard (same model and storage kind).
    """
    sharded = ShardedIndex.create(index, directory, client, timeout=timeout)
    sharded.add_from(data, column=column, ids_column=ids_column)
    return sharded


def _one_change_at_a_time(method):
    """Run a change of a ``ShardedIndex`` alone among the changes of that object."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._changing:
            return method(self, *args, **kwargs)
    return run


class ShardedIndex:
    """An index split into shards on a Dask cluster, searched and changed as one index.

    The shards are files in a directory every worker can read and write (a shared file
    system; layout in ``_formats.shards``), each loaded into one worker's memory. Make one with
    ``create`` (empty) or ``build_shards``; ``open`` reopens it. Every change is on disk when
    its call returns (it commits a new manifest version, exclusively created). Threads may
    share one object: its changes run one at a time. A change made through another
    ``ShardedIndex`` on the same directory (another process, client or object) makes this
    one's next change raise RuntimeError and change nothing (reopen it): no change is lost,
    but the other may remove shard files this one still reads.

    A shard lost with its worker is loaded again from its file, on another worker, and is
    checked again (checksum and model digest): a search gives the same answer, or an error
    naming the shard, never an answer that misses a shard. ``timeout``: seconds a search (or
    loading the shards) may take before it raises ``TimeoutError`` (None: no limit).
    """

    def __init__(self, directory, manifest: dict, template: BioHashIndex, client: Client,
                 timeout: float | None = DEFAULT_TIMEOUT):
        """Internal: use ``create``, ``open`` or ``build_shards``."""
        self.client = client
        self.directory = str(directory)
        self.manifest = manifest
        self.template = template
        self.timeout = None if timeout is None else check_real(timeout, "timeout", low=0.0,
                                                                low_inclusive=False)
        self.closed = False
        self._changing = threading.Lock()   # one change of this object at a time
        self.shards_ = self._load(manifest["shards"])

    @classmethod
    def create(cls, index: BioHashIndex, directory, client: Client | None = None, *,
               timeout: float | None = DEFAULT_TIMEOUT) -> "ShardedIndex":
        """A new sharded index without vectors in ``directory`` (new or empty); ``index``,
        trained and empty, is the template of every shard (model and storage kind)."""
        if not isinstance(index, BioHashIndex):
            raise TypeError(f"index must be a BioHashIndex, got {type(index).__name__}")
        if not index.is_trained or index.ntotal:
            raise ValueError("index must be trained and empty: it is the template of every "
                             f"shard (is_trained={index.is_trained}, ntotal={index.ntotal})")
        client = client or default_client()
        template = copy.deepcopy(index)
        manifest = client.submit(_create, str(directory), template, pure=False).result()
        return cls(directory, manifest, template, client, timeout)

    @classmethod
    def open(cls, directory, client: Client | None = None, *,
             timeout: float | None = DEFAULT_TIMEOUT) -> "ShardedIndex":
        """Reopen the sharded index in ``directory``: every shard is loaded and checked
        (size, checksum, model digest); a missing, damaged or foreign shard raises
        ``BioHashFormatError`` naming its file."""
        client = client or default_client()
        manifest, template = client.submit(_open_directory, str(directory), pure=False).result()
        return cls(directory, manifest, template, client, timeout)

    # ---------------------------------------------------------------- properties
    @property
    def d(self) -> int:
        return self.template.d

    @property
    def model(self) -> BioHashModel:
        return self.template.model

    @property
    def ntotal_per_shard(self) -> list[int]:
        return [e["ntotal"] for e in self.manifest["shards"]]

    @property
    def ntotal(self) -> int:
        return sum(self.ntotal_per_shard)

    @property
    def nshards(self) -> int:
        return len(self.manifest["shards"])

    def __repr__(self) -> str:
        return (f"ShardedIndex({self.directory!r}, nshards={self.nshards}, ntotal={self.ntotal}"
                f"{', closed' if self.closed else ''})")

    # ---------------------------------------------------------------- searching
    def search(self, xq, k: int, *, params=None):
        """k nearest stored vectors over all shards: the answer of ``BioHashIndex.search`` on
        one index holding every vector, with the same model and storage (``_search.py``).

        Returns D float32 (nq, k) distances (weighted or Hamming, as the index scores) and
        I int64 (nq, k) ids (I = -1 and D = 2**31 - 1 where fewer than k are found). Each
        shard makes the shortlist of its part of the data; their merge is the shortlist of
        the whole. params: ``{"nprobe": n}`` or ``faiss.SearchParametersIVF(nprobe=n)``, the
        lists each shard of IVF storage probes in this call, and ``{"shortlist": K}`` as
        ``BioHashIndex.search`` takes it (max_codes and selectors are not offered: they
        would not mean what they mean on one index).
        """
        xq = self._queries(xq, "search")
        k = check_k(k, len(xq))
        opts = self._options(params)
        nprobe = opts.nprobe
        queries = encode_queries(self.model, xq)
        K = shortlist_size(k, self.ntotal, opts.shortlist) if queries.asymmetric else k
        if not self.nshards:
            return best(*shortlist(self.template.storage, queries, K, nprobe=nprobe), k)
        return best(*self._fan_out(_shortlist_shards, (K, queries, nprobe),
                                   _merge_shortlists, (K,)), k)

    def range_search(self, xq, radius: float):
        """All stored vectors at Hamming distance < radius, as ``BioHashIndex.range_search``:
        each query's results in (distance, id) order.

        Returns lims int64 (nq + 1,), D float32 and I int64.
        """
        radius = check_real(radius, "radius", low=0.0)
        xq = self._queries(xq, "range_search")
        r = int(min(np.ceil(radius), 8 * self.template.code_size + 1))
        if not self.nshards:
            return range_search_storage(self.model, self.template.storage, xq, r)
        return self._fan_out(_range_shards, (xq, r), _merge_ranges, ())

    def _queries(self, xq, what: str) -> np.ndarray:
        self._require_open(what)
        return check_vectors(xq, self.d, "xq")

    def _options(self, params):
        """The ``SearchOptions`` of a search's ``params``, refusing sel and max_codes."""
        opts = search_options(params, self.template.storage.kind == "ivf")
        if opts.sel is not None or opts.max_codes:
            raise ValueError("params: a ShardedIndex takes nprobe and shortlist only (not "
                             "sel or max_codes)")
        return opts

    def _fan_out(self, task, args: tuple, merge, merge_args: tuple):
        """``task(*args, *shards)`` once per worker, over the shards it holds, where it holds
        them (the arguments travel, never a shard: ``_shard_nbytes``); the results merged by
        ``merge(*merge_args, *results)`` (``_reduce``)."""
        shards = self.shards_   # this search's: a change may replace the list meanwhile
        holders = self.client.who_has(shards)
        groups: dict = {}
        for f in shards:
            groups.setdefault(min(holders.get(f.key) or [None]), []).append(f)
        parts = [self.client.submit(task, *args, *group, pure=False,
                                    workers=None if where is None else [where],
                                    allow_other_workers=True)
                 for where, group in groups.items()]
        return self._reduce(parts, list(groups.values()), merge, *merge_args)

    def _reduce(self, parts: list, groups: list[list], merge, *args):
        """The merge of the workers' results ``parts`` (the search of shard futures
        ``groups``): beyond FAN_IN of them, merged in a tree of tasks on the workers first;
        the last FAN_IN travel to the client as each is ready, within ``timeout`` seconds,
        and merge there."""
        level, tasks = parts, list(parts)
        while len(level) > FAN_IN:
            level = [self.client.submit(merge, *args, *level[i:i + FAN_IN], pure=False)
                     for i in range(0, len(level), FAN_IN)]
            tasks += level
        try:
            results = [r for _, r in as_completed(level, loop=self.client.loop,
                                                  with_results=True, timeout=self.timeout)]
        except TimeoutError:
            files = {f.key: e["file"] for e, f in zip(self.manifest["shards"], self.shards_)}
            late = [files.get(s.key, s.key) for f, g in zip(parts, groups) if not f.done()
                    for s in g]
            self.client.cancel(tasks)
            raise TimeoutError(f"no answer from the cluster within timeout={self.timeout} s; "
                               f"shards not searched yet: {late} (a worker down or stalled?)"
                               ) from None
        return results[0] if len(results) == 1 else merge(*args, *results)

    # ---------------------------------------------------------------- adding
    @_one_change_at_a_time
    def add(self, x) -> None:
        """Add float (n, d) vectors (a numpy array) as one new shard, with ids next_id ..
        next_id + n - 1 (next_id: one more than the largest id ever added, 0 at first)."""
        self._require_open("add")
        x = check_vectors(x, self.d, "x")
        self._add_parts([(x, next_ids(self.manifest["next_id"], len(x)))], [None])

    @_one_change_at_a_time
    def add_with_ids(self, x, ids) -> None:
        """Add float (n, d) vectors as one new shard under int64 (n,) ids, which must be
        distinct, not -1 and not yet in any shard (duplicates are refused)."""
        self._require_open("add_with_ids")
        x = check_vectors(x, self.d, "x")
        ids = check_new_ids(ids, len(x), IdSet())  # distinct, not -1; stored ids checked below
        self._add_parts([(x, ids)], [None])

    @_one_change_at_a_time
    def add_from(self, data, *, column: str | None = None,
                 ids_column: str | None = None) -> int:
        """Add the vectors of a dask array or dataframe, one new shard per block/partition;
        returns how many were added. Ids come from ``ids_column`` (distinct from each other
        and from the stored ids), or else continue from next_id in row order (the partition
        lengths are then computed first: one more read of a dataframe)."""
        self._require_open("add_from")
        parts, lengths = _parts(data, self.d, column, ids_column,
                                need_lengths=ids_column is None)
        starts = [None] * len(parts)
        if ids_column is None:
            next_ids(self.manifest["next_id"], int(lengths.sum()))  # they fit in int64
            starts = self.manifest["next_id"] + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return self._add_parts(parts, starts)

    def _add_parts(self, parts: list, starts: list) -> int:
        """Write one shard per part ((x, ids) or a delayed one), check that the new ids are
        not stored yet, then commit; on any error the new files are removed, nothing changed."""
        serial = self.manifest["next_serial"]
        names = [sm.shard_file(serial + i) for i in range(len(parts))]
        template = dask.delayed(self.template, pure=False)
        build = dask.delayed(_build_shard, pure=False)
        tasks = [build(template, part, start, self.directory, name)
                 for part, start, name in zip(parts, starts, names)]
        built, loaded = self.client.compute(tasks), []
        try:
            new = [e for e in self.client.gather(built) if e is not None]
            loaded = self._load(new)
            self._check_unique(new, loaded)
            self._commit(self.manifest["shards"] + new, serial + len(parts))
        except BaseException:
            self.client.cancel(loaded)
            wait(built)  # no build still writing its file
            self._remove_files(names)
            raise
        self.shards_ = self.shards_ + loaded   # a new list: searches hold the old one
        return sum(e["ntotal"] for e in new)

    def _check_unique(self, new: list[dict], loaded: list) -> None:
        """ValueError if a new shard shares an id with a stored shard or another new one;
        only shards whose id ranges overlap are compared, on the workers."""
        shards = list(zip(self.manifest["shards"], self.shards_))
        found = []
        for e, f in zip(new, loaded):
            others = [s for oe, s in shards if oe["min_id"] <= e["max_id"]
                      and e["min_id"] <= oe["max_id"]]
            if others:
                ids_f = self.client.submit(_shard_ids, f, pure=False)
                found += [self.client.submit(_shared_ids, s, ids_f, pure=False) for s in others]
            shards.append((e, f))
        shared = np.unique(np.concatenate([np.zeros(0, np.int64)]
                                          + self.client.gather(found)))
        if len(shared):
            raise ValueError(f"ids must be distinct over the whole sharded index; already "
                             f"stored (or repeated in the added data): {shared[:5].tolist()} "
                             "(remove them first to replace them)")

    # ---------------------------------------------------------------- removing
    @_one_change_at_a_time
    def remove_ids(self, ids) -> int:
        """Remove the vectors with these int64 ids from every shard; returns how many were
        removed (unknown ids are skipped). Shards that change are written anew; emptied
        shards are dropped."""
        self._require_open("remove_ids")
        ids = check_ids(ids)
        serial, entries = self.manifest["next_serial"], self.manifest["shards"]
        mine = [ids[(ids >= e["min_id"]) & (ids <= e["max_id"])] for e in entries]
        targets = [i for i, m in enumerate(mine) if len(m)]  # shards whose range has an id
        names = {i: sm.shard_file(serial + j) for j, i in enumerate(targets)}
        jobs = [self.client.submit(_remove_from_shard, self.shards_[i], mine[i], entries[i],
                                   self.directory, names[i], pure=False) for i in targets]
        try:
            results = dict(zip(targets, self.client.gather(jobs)))
            changed = {i: e for i, (n, e) in results.items() if n}  # new entry or None
            kept = [i for i in range(len(entries)) if changed.get(i, entries[i]) is not None]
            loaded = iter(self._load([changed[i] for i in kept if i in changed]))
            shards = [next(loaded) if i in changed else self.shards_[i] for i in kept]
            self._commit([changed.get(i, entries[i]) for i in kept], serial + len(targets))
        except BaseException:
            wait(jobs)  # none still writing its file
            self._remove_files(list(names.values()))
            raise
        self.shards_ = shards
        self._remove_files([entries[i]["file"] for i in changed])
        return sum(n for n, _ in results.values())

    # ---------------------------------------------------------------- state
    @_one_change_at_a_time
    def close(self) -> None:
        """Release the shards from the workers' memory; the files stay."""
        self.client.cancel(self.shards_)
        self.shards_ = []
        self.closed = True

    def __enter__(self) -> "ShardedIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _require_open(self, what: str) -> None:
        if self.closed:
            raise RuntimeError(f"{what}() on a closed ShardedIndex: reopen it with "
                               f"ShardedIndex.open({self.directory!r}, client)")

    def _load(self, entries: list[dict]) -> list:
        """Futures of the shards of ``entries``, loaded and checked on the workers (spread
        over them in turn; reloaded from the file, checked again, if a worker is lost)."""
        workers = sorted(self.client.nthreads())
        digest = self.manifest["model_digest"]
        futures = [self.client.submit(_read_shard, self.directory, e, digest,
                                      key=f"biohash-{e['file']}-{secrets.token_hex(4)}",
                                      workers=workers[i % len(workers)] if workers else None,
                                      allow_other_workers=True)
                   for i, e in enumerate(entries)]
        try:
            wait(futures, timeout=self.timeout)
        except DaskTimeoutError:
            self.client.cancel(futures)
            raise TimeoutError(f"the shards were not loaded within timeout={self.timeout} s"
                               ) from None
        failed = [f for f in futures if f.status == "error"]
        if failed:
            error = failed[0].exception()
            self.client.cancel(futures)
            raise error
        return futures

    def _commit(self, shards: list[dict], next_serial: int) -> None:
        """Commit the next manifest version (``_formats.shards.commit``: a compare-and-swap,
        safe to run again), or raise RuntimeError if another writer changed the index."""
        manifest = sm.next_manifest(self.manifest, shards, next_serial)
        self.client.submit(sm.commit, self.directory, manifest, pure=False).result()
        self.manifest = manifest

    def _remove_files(self, names: list[str]) -> None:
        """Delete those of these shard files that the current manifest does not list."""
        if names:
            self.client.submit(sm.remove_unlisted, self.directory, names, pure=False).result()


def _create(root: str, template: BioHashIndex) -> dict:
    return sm.create(root, template._state())


def _read_shard(root: str, entry: dict, digest: str) -> BioHashIndex:
    """The shard of manifest ``entry``, loaded and checked (``_formats.shards.read_shard``)."""
    return BioHashIndex._from_state(sm.read_shard(root, entry, digest))


def _open_directory(root: str):
    manifest = sm.read_manifest(root)
    template = _read_shard(root, manifest["template"], manifest["model_digest"])
    if template.ntotal or not template.is_trained:
        raise sm.BioHashFormatError(f"{root}/{sm.TEMPLATE}: must be trained and empty")
    return manifest, template


def _build_shard(template: BioHashIndex, block, start: int | None, root: str, name: str):
    """Write the shard of one block ((x, ids), ids None: start, start + 1, ...); returns its
    manifest entry, or None for an empty block."""
    x, ids = block
    if len(x) == 0:
        return None
    if ids is None:
        ids = np.arange(start, start + len(x), dtype=np.int64)
    shard = copy.deepcopy(template)
    shard.add_with_ids(x, ids)
    return sm.write_shard(shard._state(), root, name)


def _remove_from_shard(shard: BioHashIndex, ids: np.ndarray, entry: dict, root: str,
                       name: str):
    """(removed, entry): ``entry`` itself if nothing was removed, None if the shard is now
    empty, else the entry of the new file ``name`` holding the rest (the loaded shard is
    not changed: it stays what its file says)."""
    hit = np.unique(ids[shard.storage.id_set.isin(ids)])
    if not len(hit):
        return 0, entry
    rest = copy.deepcopy(shard)
    removed = rest.remove_ids(hit)
    return removed, (sm.write_shard(rest._state(), root, name) if rest.ntotal else None)


def _shard_ids(shard: BioHashIndex) -> np.ndarray:
    return shard.storage.ids()


def _shared_ids(shard: BioHashIndex, ids: np.ndarray) -> np.ndarray:
    return ids[shard.storage.id_set.isin(ids)][:5]


@sizeof.register(BioHashIndex)
def _shard_nbytes(index: BioHashIndex) -> int:
    """Bytes of a shard's codes and ids, its size for Dask's scheduler, which otherwise
    takes any object for a few bytes: it would run a search task where the queries are and
    copy the shard there, rather than send the queries to the shard."""
    return index.ntotal * (index.storage.code_size + 8)


def _shortlist_shards(K: int, queries, nprobe: int | None, *shards: BioHashIndex):
    """The shortlist (H, I, W) of the queries over the shards of one worker."""
    return _merge_shortlists(K, *(shortlist(s.storage, queries, K, nprobe=nprobe)
                                  for s in shards))


def _merge_shortlists(K: int, *parts):
    return parts[0] if len(parts) == 1 else merge_shortlists(list(parts), K)


def _range_shards(xq: np.ndarray, r: int, *shards: BioHashIndex):
    """The range result (lims, D, I) of the queries over the shards of one worker."""
    return _merge_ranges(*(range_search_storage(s.model, s.storage, xq, r) for s in shards))


def _merge_ranges(*parts):
    return parts[0] if len(parts) == 1 else sort_ranges(list(parts))


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
