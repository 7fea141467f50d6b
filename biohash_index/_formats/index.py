"""The index format ("biohash-index", version 4): one saved generation of an index, as files.

A generation is four files (docs/format.md)::

    manifest.json   format, versions, and size + checksum (xxh64; sha256 before) of each file
    model.arrow     hyperparameters, mean, weights, training statistics, the length byte's
                    levels (one row)
    meta.arrow      ntotal, next_id, storage kind and parameters, ids (one row)
    codes.faiss     the code storage, ``faiss.write_index_binary``

This module is the codec: ``encode_files`` turns an ``IndexState`` (everything a saved index
holds) into the files' bytes, ``decode_files`` turns them back into a checked state; the tar
form of one generation (``serialize_state``, ``deserialize_state``) is the in-memory index,
the pickle of an index, a shard file and the index inside a store or refine file.
``index_dir`` keeps generations in an index directory. Neither knows ``BioHashIndex``, which
produces the state it saves and builds itself from the state it loads.

Decoding checks the manifest and every file's size and checksum before any byte goes to
pyarrow or faiss, reads the Arrow files with the hardened reader (``_io.read_ipc``), then
checks that the files agree (``state_problem``). Encoding runs the same final check first,
so a save never writes what a load would refuse. Nothing is unpickled.

To change the format (a new file, or new columns): bump FORMAT_VERSION; add the version to
FILES with its files (a new file: its name in FILES, its encoder in ENCODERS); read the
new file or columns in ``decode_files`` with what older versions imply when they lack them
(as ADDED_PARAMS does for hyperparameters); add the field to ``IndexState`` and its checks to
``state_problem``; document it in docs/format.md. Older versions keep loading as they did.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import tarfile
from typing import Callable, Mapping

import faiss
import numpy as np
import pyarrow as pa

from .._checksum_kernels import xxh64
from .._lengths import LEVELS, are_levels
from .._model import BioHashParams
from .._router import ROUTERS, Router
from .._storage import FlatCodeStorage, padded_code_size, storage_from_faiss
from .._validation import check_n_threads, saved_n_threads
from .._version import __version__
from ._io import BioHashFormatError, ipc_buffer, parse_json, read_ipc, source_buffer, tar_members

FORMAT_NAME = "biohash-index"
FORMAT_VERSION = 4
MANIFEST = "manifest.json"
# the files of a generation (besides the manifest) by the format version that wrote it:
# 1, biohash-index 0.1; 2, with the scoring hyperparameter (ADDED_PARAMS); 3, with
# meta.arrow's search_order, the router of IVF storage (ROUTER_COLUMNS) and the projection
# hyperparameter; 4, with model.arrow's length_levels and the length_byte hyperparameter
FILES = {1: ("model.arrow", "meta.arrow", "codes.faiss"),
         2: ("model.arrow", "meta.arrow", "codes.faiss"),
         3: ("model.arrow", "meta.arrow", "codes.faiss"),
         4: ("model.arrow", "meta.arrow", "codes.faiss")}
SEARCH_ORDERS = ("id", "faiss")   # meta.arrow's search_order (IVFCodeStorage.faiss_order)
# meta.arrow's columns of the router of routed IVF storage (version 3; null otherwise)
ROUTER_COLUMNS = ("router", "assign", "router_nlist", "router_nprobe", "router_mean",
                  "router_units", "router_bias")
READS_VERSIONS = tuple(FILES)
LEVELS_TYPE = pa.list_(pa.float32(), LEVELS)   # model.arrow's length_levels (version 4)
MAX_MANIFEST_BYTES = 1 << 16
MAX_EMPTY_LISTS = 1 << 20   # lists a small codes.faiss may declare (faiss makes each before reading)
# hyperparameters a file may lack (docs/format.md), read with the values their declarations
# say files saved before them imply (``hyperparameter(before=...)``)
ADDED_PARAMS = {f.name: f.metadata["before"] for f in dataclasses.fields(BioHashParams)
                if f.metadata["before"] is not dataclasses.MISSING}
# faiss's type tags (fourcc) of codes.faiss by storage kind, the first the one written
# (docs/format.md): IndexBinaryIDMap or IndexBinaryIDMap2 of IndexBinaryFlat, IndexBinaryIVF
STORAGE_TAGS = {"flat": (b"IBMp", b"IBM2"), "ivf": (b"IBwF",), "inverted": (b"IBMp", b"IBM2")}
# Arrow type of each BioHashParams field, by its annotation
PARAM_TYPES = {"int": pa.int64(), "int | None": pa.int64(), "float": pa.float64(),
               "str": pa.string(), "bool": pa.bool_()}


@dataclasses.dataclass(frozen=True, eq=False)
class IndexState:
    """Everything a saved index holds: what ``encode_files`` writes and ``decode_files``
    returns, checked to agree (``state_problem``)."""
    params: BioHashParams
    mean: np.ndarray | None            # float32 (d,) centring mean; None if untrained
    weights: np.ndarray | None         # float32 (n_hidden, d); None if untrained
    train_stats: Mapping[str, np.ndarray]   # float64 (epochs,) per training statistic
    storage: FlatCodeStorage           # the codes and their ids, of any storage kind
    next_id: int                       # the id ``add`` gives next
    n_threads: int | None              # threads per call, None for the current settings
    length_levels: np.ndarray | None = None   # float32 (LEVELS,) with length_byte (_lengths)


def state_problem(state: IndexState) -> tuple[str, str] | None:
    """(file, what is wrong) for the first thing a load would refuse in ``state``, or None:
    learned arrays of the wrong shape or not finite, a storage of another code size, an id
    at or past next_id, a filled or trained storage for an untrained model."""
    prm, storage = state.params, state.storage
    if (state.mean is None) != (state.weights is None):
        return "model.arrow", "mean and weights must both be present or both absent"
    if state.weights is not None:
        for what, a, shape in (("mean", state.mean, (prm.d,)),
                               ("weights", state.weights, (prm.n_hidden, prm.d))):
            if a.dtype != np.float32 or a.shape != shape:
                return "model.arrow", f"{what} must be float32 of shape {shape}, got {a.dtype} {a.shape}"
        if not (np.isfinite(state.mean).all() and np.isfinite(state.weights).all()):
            return "model.arrow", "mean or weights hold NaN or infinite values"
    elif storage.ntotal or (storage.kind == "ivf" and storage.is_trained):
        return "codes.faiss", "trained or filled storage for an untrained model"
    if (state.length_levels is not None) != (prm.length_byte and state.weights is not None):
        return "model.arrow", "length_levels must be present exactly for a trained model with "\
                              "length_byte=True"
    if state.length_levels is not None and not are_levels(state.length_levels):
        return "model.arrow", f"length_levels must be {LEVELS} ascending positive finite float32"
    if storage.routes:
        problem = _router_problem(storage, prm.d)
        if problem:
            return problem
    if storage.code_size != padded_code_size(prm.code_size):
        return "codes.faiss", (f"{storage.kind} storage of {storage.code_size}-byte codes, "
                               f"expected {padded_code_size(prm.code_size)}-byte codes")
    ids = storage.id_view()
    if len(ids) != storage.ntotal:
        return "codes.faiss", f"ntotal={storage.ntotal} for {len(ids)} distinct stored ids"
    if not isinstance(state.next_id, int) or state.next_id < 0 or (
            len(ids) and state.next_id <= ids.max()):
        return "meta.arrow", f"next_id={state.next_id} must exceed every stored id"
    return None


def _router_problem(storage, d: int) -> tuple[str, str] | None:
    """What is wrong with the router of routed IVF storage, or None: arrays of the wrong
    shape or not finite, or a faiss index that does not have one list per unit."""
    router, index = storage.router, storage.index
    if not router.is_trained:
        if index.is_trained or index.nlist != (router.nlist or 1):
            return "codes.faiss", "a trained IVF index for an untrained router"
        return None
    nlist = len(router.units_)
    for what, a, shape in (("router_mean", router.mean_, (d,)),
                           ("router_units", router.units_, (nlist, d)),
                           ("router_bias", router.bias_, (nlist,))):
        if a.dtype != np.float32 or a.shape != shape or not np.isfinite(a).all():
            return "meta.arrow", f"{what} must be finite float32 of shape {shape}"
    if not index.is_trained or index.nlist != nlist or nlist == 0:
        return "codes.faiss", f"an IVF index of {index.nlist} lists for {nlist} router units"
    return None


# ==================================================================== encoding
def encode_files(state: IndexState) -> dict:
    """The bytes of every file of one generation, manifest.json included, each bytes-like
    (bytes, a pyarrow Buffer or a uint8 numpy array, uncopied); a state a load
    would refuse raises ValueError instead (a save never writes what a load refuses)."""
    problem = state_problem(state)
    if problem:
        raise ValueError(f"cannot save the index: {problem[1]}")
    files = {name: ENCODERS[name](state) for name in FILES[FORMAT_VERSION]}
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "library_version": __version__,
                "files": {name: {"size": len(data), CHECKSUM: checksum(data, CHECKSUM)}
                          for name, data in files.items()}}
    files[MANIFEST] = json.dumps(manifest, indent=1).encode()
    return files


def serialize_state(state: IndexState) -> bytes:
    """The files of one generation in an uncompressed tar archive (ustar), as bytes: the
    ``tar_parts`` joined in one copy."""
    return b"".join(tar_parts(state))


def tar_parts(state: IndexState) -> list:
    """The bytes of ``serialize_state`` as the bytes-like parts that make them up, in order,
    uncopied (written in turn to a file): what ``tarfile`` writes (a header and the data,
    padded to 512-byte blocks, per file; two zero blocks; zeros to a whole 10 KiB record)."""
    parts = []
    for name, data in encode_files(state).items():
        info = tarfile.TarInfo(name)
        info.size = len(data)
        parts += [info.tobuf(tarfile.USTAR_FORMAT, tarfile.ENCODING, "surrogateescape"), data,
                  bytes(-len(data) % tarfile.BLOCKSIZE)]
    size = sum(len(p) for p in parts) + 2 * tarfile.BLOCKSIZE
    parts.append(bytes(2 * tarfile.BLOCKSIZE + -size % tarfile.RECORDSIZE))
    return parts


def _model_table(state: IndexState) -> pa.Table:
    prm = state.params
    cols = {"format_version": pa.array([FORMAT_VERSION], pa.int32()),
            "library_version": pa.array([__version__], pa.string())}
    for f in dataclasses.fields(BioHashParams):
        cols[f.name] = pa.array([getattr(prm, f.name)], PARAM_TYPES[f.type])
    vec = pa.list_(pa.float32(), prm.d)
    if state.weights is not None:
        cols["mean"] = pa.FixedSizeListArray.from_arrays(pa.array(state.mean), prm.d)
        rows = pa.FixedSizeListArray.from_arrays(pa.array(state.weights.ravel()), prm.d)
        cols["weights"] = pa.ListArray.from_arrays(pa.array([0, len(rows)], pa.int32()), rows)
    else:
        cols["mean"] = pa.nulls(1, vec)
        cols["weights"] = pa.nulls(1, pa.list_(vec))
    stats = {k: pa.array([np.asarray(v, np.float64)], pa.list_(pa.float64()))
             for k, v in state.train_stats.items()}
    cols["train_stats"] = (pa.StructArray.from_arrays(list(stats.values()), list(stats))
                           if stats else pa.array([{}], pa.struct([])))
    cols["length_levels"] = (pa.nulls(1, LEVELS_TYPE) if state.length_levels is None else
                             pa.FixedSizeListArray.from_arrays(pa.array(state.length_levels),
                                                               LEVELS))
    return pa.table(cols)


def _meta_table(state: IndexState) -> pa.Table:
    storage = state.storage
    ivf = storage.kind == "ivf"
    ids = pa.array(storage.id_view(), pa.int64())
    return pa.table({
        "ntotal": pa.array([storage.ntotal], pa.int64()),
        "next_id": pa.array([state.next_id], pa.int64()),
        "storage": pa.array([storage.kind], pa.string()),
        "nlist": pa.array([storage.nlist if ivf else None], pa.int64()),
        "nprobe": pa.array([storage.nprobe if ivf else None], pa.int64()),
        "n_threads": pa.array([state.n_threads], pa.int64()),
        "search_order": pa.array(["faiss" if storage.faiss_order else "id"]),
        **_router_columns(storage.router if storage.routes else None, state.params.d),
        "ids": pa.LargeListArray.from_arrays(pa.array([0, len(ids)], pa.int64()), ids),
    })


def _router_columns(router: Router | None, d: int) -> dict[str, pa.Array]:
    """ROUTER_COLUMNS of meta.arrow: the router's settings, and its learned arrays (null
    if untrained); all null without a router."""
    vec = pa.list_(pa.float32(), d)
    trained = router is not None and router.is_trained
    settings = (router.kind, router.assign, router.nlist, router.nprobe) if router else (None,) * 4
    cols = {name: pa.array([v], pa.string() if name == "router" else pa.int64())
            for name, v in zip(ROUTER_COLUMNS[:4], settings)}
    if trained:
        units = pa.FixedSizeListArray.from_arrays(pa.array(router.units_.ravel()), d)
        cols["router_mean"] = pa.FixedSizeListArray.from_arrays(pa.array(router.mean_), d)
        cols["router_units"] = pa.ListArray.from_arrays(pa.array([0, len(units)], pa.int32()),
                                                        units)
        cols["router_bias"] = pa.array([router.bias_], pa.list_(pa.float32()))
    else:
        cols["router_mean"] = pa.nulls(1, vec)
        cols["router_units"] = pa.nulls(1, pa.list_(vec))
        cols["router_bias"] = pa.nulls(1, pa.list_(pa.float32()))
    return cols


# the bytes of each file of FILES, from the state
ENCODERS = {"model.arrow": lambda state: ipc_buffer(_model_table(state)),
            "meta.arrow": lambda state: ipc_buffer(_meta_table(state)),
            "codes.faiss": lambda state: faiss.serialize_index_binary(state.storage.index)}


# ==================================================================== decoding
def deserialize_state(data, name: str = "serialized index") -> IndexState:
    """Inverse of ``serialize_state``, with all the checks of ``decode_files``: data is bytes
    or a path to such an archive; ``name`` names it in errors."""
    buf, name = source_buffer(data, name)
    sizes = {MANIFEST: MAX_MANIFEST_BYTES,
             **{f: buf.size for files in FILES.values() for f in files}}
    files = tar_members(buf, name, sizes)
    if MANIFEST not in files:
        raise BioHashFormatError(f"{name}: {MANIFEST}: missing")
    return decode_files(files, lambda file: f"{name}: {file}")


def decode_files(files: Mapping[str, pa.Buffer], at: Callable[[str], str]) -> IndexState:
    """The state in the buffers of manifest.json and the files it lists, after checking the
    manifest and every file's size and checksum, then that the files agree; ``at(file)`` names
    a file in error messages."""
    manifest = parse_manifest(files[MANIFEST].to_pybytes(), at(MANIFEST))
    for name, entry in manifest["files"].items():
        if name not in files:
            raise BioHashFormatError(f"{at(name)}: missing")
        _verify(files[name], entry, at(name))
    model_file, meta_file, codes_file = (at(name) for name in FILES[manifest["format_version"]])
    model = _read_row(files["model.arrow"], model_file)
    meta = _read_row(files["meta.arrow"], meta_file)
    params = _params(model, model_file)
    kind, n_threads = _storage_settings(meta, meta_file)
    mean, weights, stats = _model_arrays(model, params, model_file)
    levels = _length_levels(model, manifest["format_version"], model_file)
    faiss_order = _search_order(meta, manifest["format_version"], meta_file) == "faiss"
    router = _read_router(meta, manifest["format_version"], params.d, kind, faiss_order,
                          meta_file)
    storage = _read_storage(files["codes.faiss"], kind, faiss_order, router, codes_file)
    _check_meta(meta, storage, meta_file, codes_file)
    state = IndexState(params, mean, weights, stats, storage,
                       _scalar(meta, "next_id", meta_file), n_threads, levels)
    problem = state_problem(state)
    if problem:
        raise BioHashFormatError(f"{at(problem[0])}: {problem[1]}")
    return state


def parse_manifest(data: bytes, name: str) -> dict:
    """The manifest (format, format_version, files: {name: {"size", "xxh64" or "sha256"}}),
    checked:
    this format, a version this library reads, and exactly the files of that version."""
    manifest = parse_json(data, name)
    try:
        files = manifest["files"]
        fmt, version = manifest["format"], manifest["format_version"]
    except (KeyError, TypeError) as e:
        raise BioHashFormatError(f"{name}: not a valid manifest ({e!r})") from None
    if fmt != FORMAT_NAME:
        raise BioHashFormatError(f"{name}: format {fmt!r}, expected {FORMAT_NAME!r}")
    if version not in READS_VERSIONS or isinstance(version, bool):
        raise BioHashFormatError(f"{name}: format version {version!r}, this library reads "
                                 f"{READS_VERSIONS} (library {manifest.get('library_version')!r})")
    if not isinstance(files, dict) or sorted(files) != sorted(FILES[version]) or not all(
            isinstance(e, dict) and isinstance(e.get("size"), int)
            and _entry_checksum(e) is not None for e in files.values()):
        raise BioHashFormatError(f"{name}: must list size and a checksum "
                                 f"({' or '.join(CHECKSUMS)}) of exactly {FILES[version]}")
    return manifest


# ==================================================================== checksums
# A manifest entry's checksum: "xxh64" (16 hex digits), which saves write, or "sha256", which
# files saved before it hold and which is verified as before. Either detects damage; neither is a
# security boundary (docs/format.md).
CHECKSUM = "xxh64"
CHECKSUMS = ("xxh64", "sha256")


def checksum(data, kind: str) -> str:
    """The hex checksum ``kind`` (of CHECKSUMS) of bytes-like data."""
    if kind == "sha256":
        return hashlib.sha256(data).hexdigest()
    return f"{xxh64(np.frombuffer(data, np.uint8)):016x}"


def _entry_checksum(entry: dict) -> str | None:
    """The kind of checksum a manifest entry gives (the first of CHECKSUMS it holds as a
    string), or None."""
    return next((kind for kind in CHECKSUMS if isinstance(entry.get(kind), str)), None)


def _verify(data: pa.Buffer, entry: dict, name: str) -> None:
    if data.size != entry["size"]:
        raise BioHashFormatError(f"{name}: {data.size} bytes, the manifest says "
                                 f"{entry['size']} (truncated or replaced)")
    kind = _entry_checksum(entry)
    if checksum(data, kind) != entry[kind]:
        raise BioHashFormatError(f"{name}: {kind} checksum mismatch (corrupted)")


Row = dict   # column name -> pa.Array: the one row of model.arrow or meta.arrow (_read_row)


def _read_row(buf: pa.Buffer, name: str) -> Row:
    """The columns of the one-row Arrow table in buf, each the array of the record batch that
    holds the row: read once (looking a column up in a table costs microseconds each time);
    a repeated column name is refused."""
    table = read_ipc(buf, name)
    if table.num_rows != 1:
        raise BioHashFormatError(f"{name}: expected one row, got {table.num_rows}")
    names = table.column_names
    if len(set(names)) != len(names):
        raise BioHashFormatError(f"{name}: repeated column names")
    return {column: next(c for c in chunked.chunks if len(c))
            for column, chunked in zip(names, table.columns)}


def _column(row: Row, column: str, name: str) -> pa.Array:
    """The array holding ``column`` of the row."""
    if column not in row:
        raise BioHashFormatError(f"{name}: no column {column!r}")
    return row[column]


def _scalar(row: Row, column: str, name: str):
    return _column(row, column, name)[0].as_py()


def _params(row: Row, name: str) -> BioHashParams:
    version = _scalar(row, "format_version", name)
    if version not in READS_VERSIONS:
        raise BioHashFormatError(f"{name}: format version {version}, this library reads "
                                 f"{READS_VERSIONS}")
    values = {f.name: ADDED_PARAMS[f.name] if f.name in ADDED_PARAMS and f.name not in row
              else _scalar(row, f.name, name)
              for f in dataclasses.fields(BioHashParams)}
    try:
        return BioHashParams(**values)
    except (TypeError, ValueError) as e:
        raise BioHashFormatError(f"{name}: bad hyperparameters ({e})") from None


def _storage_settings(meta: Row, name: str) -> tuple[str, int | None]:
    """The storage kind and n_threads of meta.arrow, checked; n_threads is lowered to what
    numba has here (a setting of the machine that saved it)."""
    kind, nlist, nprobe, n_threads = (_scalar(meta, col, name)
                                      for col in ("storage", "nlist", "nprobe", "n_threads"))
    if not isinstance(kind, str) or (kind != "ivf" and (nlist, nprobe) != (None, None)):
        raise BioHashFormatError(f"{name}: bad storage {kind!r} (nlist={nlist}, nprobe={nprobe})")
    if kind not in STORAGE_TAGS:
        raise BioHashFormatError(f"{name}: storage must be one of {tuple(STORAGE_TAGS)}, "
                                 f"got {kind!r}")
    try:
        return kind, check_n_threads(saved_n_threads(n_threads))
    except (TypeError, ValueError) as e:
        raise BioHashFormatError(f"{name}: {e}") from None


def _search_order(meta: Row, version: int, name: str) -> str:
    """"id", or "faiss" for IVF storage searched in faiss's own order, as every IVF index
    of format versions 1 and 2 was (``IVFCodeStorage.faiss_order``)."""
    if version < 3:
        return "faiss"
    order = _scalar(meta, "search_order", name)
    if order not in SEARCH_ORDERS:
        raise BioHashFormatError(f"{name}: search_order must be one of {SEARCH_ORDERS}, "
                                 f"got {order!r}")
    return order


def _read_router(meta: Row, version: int, d: int, kind: str, faiss_order: bool,
                 name: str) -> Router | None:
    """The router of routed IVF storage (version 3, IVF storage in "id" order), or None."""
    if version < 3:
        return None
    kind_, assign, nlist, nprobe = (_scalar(meta, col, name) for col in ROUTER_COLUMNS[:4])
    if (kind_ is not None) != (kind == "ivf" and not faiss_order):
        raise BioHashFormatError(f"{name}: router {kind_!r} for {kind} storage in "
                                 f"{'faiss' if faiss_order else 'id'} order (IVF storage in "
                                 "id order has a router, other storage none)")
    if kind_ is None:
        return None
    try:
        router = Router(kind_, nlist, nprobe, assign)
    except (TypeError, ValueError) as e:
        raise BioHashFormatError(f"{name}: bad router ({e}; routers: {ROUTERS})") from None
    vec = pa.list_(pa.float32(), d)
    cols = {c: _column(meta, c, name) for c in ROUTER_COLUMNS[4:]}
    types = (vec, pa.list_(vec), pa.list_(pa.float32()))
    if any(col.type != t for col, t in zip(cols.values(), types)):
        raise BioHashFormatError(f"{name}: router arrays must be of types {types}")
    nulls = {col.null_count for col in cols.values()}
    if len(nulls) != 1:
        raise BioHashFormatError(f"{name}: router arrays must all be present or all null")
    if nulls == {1}:
        return router
    mean, units, bias = (cols["router_mean"].flatten(), cols["router_units"].flatten().flatten(),
                         cols["router_bias"].flatten())
    if mean.null_count or units.null_count or bias.null_count or len(units) != d * len(bias):
        raise BioHashFormatError(f"{name}: router_units must be len(router_bias) * d values, "
                                 "without nulls")
    effective = _scalar(meta, "nprobe", name)
    try:
        return Router.from_arrays(kind_, nlist, nprobe, assign,
                                  mean.to_numpy(zero_copy_only=True),
                                  units.to_numpy(zero_copy_only=True).reshape(-1, d),
                                  bias.to_numpy(zero_copy_only=True), effective)
    except (TypeError, ValueError) as e:
        raise BioHashFormatError(f"{name}: bad router ({e})") from None


def _model_arrays(row: Row, prm: BioHashParams, name: str):
    """(mean, weights, train_stats) of model.arrow: mean and weights read-only views of
    its buffers, or None for an untrained model."""
    vec = pa.list_(pa.float32(), prm.d)
    mean, weights = _column(row, "mean", name), _column(row, "weights", name)
    stats = _column(row, "train_stats", name)
    if mean.type != vec or weights.type != pa.list_(vec):
        raise BioHashFormatError(f"{name}: mean/weights types {mean.type}, {weights.type} do "
                                 f"not match d={prm.d}")
    if not pa.types.is_struct(stats.type) or any(
            f.type != pa.list_(pa.float64()) for f in stats.type):
        raise BioHashFormatError(f"{name}: train_stats must be a struct of list<double>, "
                                 f"got {stats.type}")
    if mean.null_count != weights.null_count:
        raise BioHashFormatError(f"{name}: mean and weights must both be present or both null")
    mu = W = None
    if weights.null_count == 0:
        mu, W = mean.flatten(), weights.flatten().flatten()
        if mu.null_count or W.null_count or len(W) != prm.n_hidden * prm.d:
            raise BioHashFormatError(f"{name}: weights must be n_hidden * d = {prm.n_hidden} * "
                                     f"{prm.d} values without nulls")
        mu = mu.to_numpy(zero_copy_only=True)
        W = W.to_numpy(zero_copy_only=True).reshape(prm.n_hidden, prm.d)
    stats = {f.name: np.asarray(stats.field(i)[0].as_py(), np.float64)
             for i, f in enumerate(stats.type)}
    return mu, W, stats


def _length_levels(row: Row, version: int, name: str) -> np.ndarray | None:
    """float32 (LEVELS,) length_levels of model.arrow (a read-only view), or None: null, or
    a file of a version before 4 (which lacks the column)."""
    if version < 4:
        return None
    levels = _column(row, "length_levels", name)
    if levels.type != LEVELS_TYPE:
        raise BioHashFormatError(f"{name}: length_levels must be {LEVELS_TYPE}, got "
                                 f"{levels.type}")
    if levels.null_count:
        return None
    values = levels.flatten()
    if values.null_count:
        raise BioHashFormatError(f"{name}: length_levels hold nulls")
    return values.to_numpy(zero_copy_only=True)


def _read_storage(buf: pa.Buffer, kind: str, faiss_order: bool, router: Router | None,
                  name: str) -> FlatCodeStorage:
    """The faiss storage in ``buf`` (already checksum-verified), checked to be of ``kind``;
    faiss parses it only after ``_check_faiss_layout``; faiss_order: IVF searched in faiss's
    own order; router: the router of routed IVF storage."""
    tags = STORAGE_TAGS[kind]
    if buf.size < 4 or buf.slice(0, 4).to_pybytes() not in tags:
        raise BioHashFormatError(f"{name}: not a faiss {kind} binary index "
                                 f"(expected the tag {tags[0]!r})")
    _check_faiss_layout(memoryview(buf), name)
    try:
        storage = storage_from_faiss(_faiss_read(memoryview(buf)), kind, faiss_order, router)
    except RuntimeError as e:
        raise BioHashFormatError(f"{name}: faiss cannot read it ({e})") from None
    except ValueError as e:   # an unsupported index type, or repeated ids
        raise BioHashFormatError(f"{name}: {e}") from None
    if storage.kind != kind:
        raise BioHashFormatError(f"{name}: {storage.kind} storage, expected {kind}")
    return storage


def _faiss_read(data: memoryview) -> faiss.IndexBinary:
    """faiss's binary index in ``data``, read by faiss in the pieces it asks for, each copied
    once from ``data`` (``faiss.deserialize_index_binary`` copies all of it first)."""
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        pos += n
        return data[pos - n:pos].tobytes()
    return faiss.read_index_binary(faiss.PyCallbackIOReader(read, 1 << 24))


class _FaissReader:
    """Reads faiss's binary index layout (faiss/impl/index_read.cpp) without allocating:
    every size it declares is checked against the bytes present."""

    def __init__(self, data: memoryview, name: str):
        self.data, self.name, self.pos = data, name, 0

    def take(self, n: int) -> memoryview:
        if n > len(self.data) - self.pos:
            raise BioHashFormatError(f"{self.name}: declares {n} bytes at byte {self.pos}, "
                                     f"{len(self.data) - self.pos} are left")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def number(self, fmt: str) -> int:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def header(self, tag: bytes) -> tuple[int, int]:
        """A binary index's fourcc, then its header: (ntotal, code_size)."""
        if bytes(self.take(4)) != tag:
            raise BioHashFormatError(f"{self.name}: expected a faiss {tag!r} at byte "
                                     f"{self.pos - 4}")
        _, code_size, ntotal, _, _ = (self.number(f) for f in ("<i", "<i", "<q", "<B", "<i"))
        if code_size < 1 or ntotal < 0:
            raise BioHashFormatError(f"{self.name}: code_size {code_size}, ntotal {ntotal}")
        return ntotal, code_size

    def vector(self, item: int, expected: int | None = None) -> int:
        """Skip a vector (its size, then size * item bytes); returns the size."""
        n = self.number("<Q")
        if expected is not None and n != expected:
            raise BioHashFormatError(f"{self.name}: a vector of {n} items where {expected} "
                                     "are expected")
        self.take(n * item)
        return n


def _check_faiss_layout(data: memoryview, name: str) -> None:
    """Walk codes.faiss as faiss will read it (an IndexBinaryIDMap/IDMap2 of an
    IndexBinaryFlat, or an IndexBinaryIVF with array inverted lists), checking every size
    it declares against the bytes present and the sizes that must agree, so that faiss, which
    allocates what a file declares before reading it, allocates only what the file holds."""
    r = _FaissReader(data, name)
    tag = bytes(data[:4])
    if tag in (b"IBMp", b"IBM2"):
        r.header(tag)
        ntotal, code_size = r.header(b"IBxF")
        r.vector(1, ntotal * code_size)
        r.vector(8, ntotal)
    else:
        r.header(b"IBwF")
        nlist, _ = r.number("<Q"), r.number("<Q")
        n_centroids, code_size = r.header(b"IBxF")
        if n_centroids not in (0, nlist):
            raise BioHashFormatError(f"{name}: {n_centroids} centroids for nlist={nlist}")
        r.vector(1, n_centroids * code_size)
        if r.number("<B") == 2:    # the direct map: its type, an array, a hash table
            r.vector(8)
            r.vector(16)
        else:
            r.vector(8)
        if bytes(r.take(4)) != b"ilar" or r.number("<Q") != nlist or r.number("<Q") != code_size:
            raise BioHashFormatError(f"{name}: inverted lists other than nlist={nlist} arrays "
                                     f"of {code_size}-byte codes")
        if nlist > max(len(data), MAX_EMPTY_LISTS):   # faiss allocates every list first
            raise BioHashFormatError(f"{name}: nlist={nlist} for {len(data)} bytes")
        kind = bytes(r.take(4))
        sizes = np.frombuffer(r.take(8 * r.number("<Q")), np.uint64)
        if kind not in (b"full", b"sprs") or (kind == b"full" and len(sizes) != nlist) or (
                kind == b"sprs" and (len(sizes) % 2 or (sizes[::2] >= nlist).any())):
            raise BioHashFormatError(f"{name}: bad inverted list sizes ({kind!r})")
        counts = sizes if kind == b"full" else sizes[1::2]
        total = int(counts.astype(object).sum())
        r.take(total * (code_size + 8))
    if r.pos != len(data):
        raise BioHashFormatError(f"{name}: {len(data) - r.pos} bytes after the index")


def _check_meta(meta: Row, storage: FlatCodeStorage, meta_file: str,
                codes_file: str) -> None:
    """Check that meta.arrow agrees with the storage of codes.faiss."""
    ntotal = _scalar(meta, "ntotal", meta_file)
    if ntotal != storage.ntotal:
        raise BioHashFormatError(f"{codes_file}: holds {storage.ntotal} codes, {meta_file} says "
                                 f"ntotal={ntotal}")
    if storage.kind == "ivf" and (storage.nlist, storage.nprobe) != (
            _scalar(meta, "nlist", meta_file), _scalar(meta, "nprobe", meta_file)):
        raise BioHashFormatError(f"{codes_file}: nlist/nprobe differ from {meta_file}")
    ids_col = _column(meta, "ids", meta_file)
    if ids_col.type != pa.large_list(pa.int64()):
        raise BioHashFormatError(f"{meta_file}: ids must be large_list<int64>, got {ids_col.type}")
    if not np.array_equal(ids_col.flatten().to_numpy(zero_copy_only=True), storage.id_view()):
        raise BioHashFormatError(f"{meta_file}: ids differ from those in {codes_file}")
