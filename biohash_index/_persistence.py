"""Saving and loading indexes: model and metadata in Arrow IPC files, codes in faiss's format.

An index on disk is a directory (layout and schemas in docs/format.md)::

    path/BIOHASH_INDEX      marks the directory as this library's: one line, MARKER_TEXT
    path/CURRENT            one line: the name of the live generation, e.g. "gen-5f0c..."
    path/LOCK               serializes concurrent saves (flock), empty
    path/gen-<hex>/         one complete saved index, never modified after it is written
        manifest.json       format, versions, and size + sha256 of each file below
        model.arrow         hyperparameters, mean, weights, training statistics (one row)
        meta.arrow          ntotal, next_id, storage kind and parameters, ids (one row)
        codes.faiss         the code storage, ``faiss.write_index_binary``

A save writes and fsyncs a new generation, then atomically replaces ``CURRENT`` (the commit
point) and removes the other generations; it deletes nothing it did not write. A load opens
regular files only (no symbolic links, FIFOs or devices), knows every file's size before
reading it, checks the manifest and every checksum before it hands any bytes to pyarrow or
faiss, then checks that the files agree. Nothing is unpickled: loading never runs code from
the files.

This module knows the files, not the index: it encodes an ``IndexState`` (everything a saved
index holds) into them and decodes them into one; ``BioHashIndex`` produces the state it saves
and builds itself from the state it loads (``write_index``, ``read_index``).
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import stat
import tarfile
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

import faiss
import numba
import numpy as np
import pyarrow as pa

from ._version import __version__
from ._files import (SAFE_OPEN, BioHashFormatError, fsync_dir, ipc_bytes, map_regular_file,
                     read_regular_file, write_new_file)
from ._model import BioHashParams
from ._storage import FlatCodeStorage, padded_code_size, storage_from_faiss
from ._validation import check_n_threads

try:
    import fcntl
except ImportError:  # not POSIX: saves to one path must not run concurrently
    fcntl = None

FORMAT_NAME = "biohash-index"
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)
# hyperparameters a file may lack (docs/format.md), read with the values their declarations
# say files saved before them imply (``hyperparameter(before=...)``)
ADDED_PARAMS = {f.name: f.metadata["before"] for f in dataclasses.fields(BioHashParams)
                if f.metadata["before"] is not dataclasses.MISSING}
FILES = ("model.arrow", "meta.arrow", "codes.faiss")
MANIFEST = "manifest.json"
CURRENT = "CURRENT"
LOCK = "LOCK"
MARKER = "BIOHASH_INDEX"
MARKER_TEXT = b"biohash-index directory\n"
GENERATION = re.compile(r"gen-[0-9a-f]{16}")
POINTER_TMP = re.compile(r"\.CURRENT\.tmp-gen-[0-9a-f]{16}")  # a save's CURRENT before the rename
MAX_MANIFEST_BYTES = 1 << 16
MAX_CURRENT_BYTES = 64
# faiss's type tags (fourcc) of codes.faiss by storage kind, the first the one written
# (docs/format.md): IndexBinaryIDMap or IndexBinaryIDMap2 of IndexBinaryFlat, IndexBinaryIVF
STORAGE_TAGS = {"flat": (b"IBMp", b"IBM2"), "ivf": (b"IBwF",), "inverted": (b"IBMp", b"IBM2")}
# Arrow type of each BioHashParams field, by its annotation
PARAM_TYPES = {"int": pa.int64(), "int | None": pa.int64(), "float": pa.float64(),
               "str": pa.string(), "bool": pa.bool_()}


@dataclasses.dataclass(frozen=True, eq=False)
class IndexState:
    """Everything a saved index holds: what ``encode_files`` writes and ``decode_files``
    returns, checked to agree."""
    params: BioHashParams
    mean: np.ndarray | None            # float32 (d,) centring mean; None if untrained
    weights: np.ndarray | None         # float32 (n_hidden, d); None if untrained
    train_stats: Mapping[str, np.ndarray]   # float64 (epochs,) per training statistic
    storage: FlatCodeStorage           # the codes and their ids, of any storage kind
    next_id: int                       # the id ``add`` gives next
    n_threads: int | None              # threads per call, None for the current settings


# ==================================================================== files and bytes
def write_state(state: IndexState, path) -> None:
    """Save ``state`` to the directory ``path`` atomically (see ``write_index``)."""
    files = encode_files(state)
    root = Path(path)
    while True:  # at most twice: a concurrent save may create ``root`` meanwhile
        if root.is_dir():
            if not _holds_index(root) and not _is_empty(root):
                raise ValueError(f"path {str(root)!r} is a directory that does not hold a saved "
                                 "index and is not empty; refusing to replace it")
            return _write_generation(root, files)
        if os.path.lexists(root):
            raise ValueError(f"path {str(root)!r} exists and is not a directory")
        if _create_index_dir(root, files):
            return


def read_state(path) -> IndexState:
    """The state saved in the directory ``path`` (see ``read_index``), or a
    ``BioHashFormatError`` naming the file."""
    root = Path(path)
    if os.path.lexists(root / MANIFEST):
        return _read_generation(root)
    if not os.path.lexists(root / CURRENT):
        raise BioHashFormatError(f"{root}: not a saved index (no {CURRENT} file)")
    while True:  # a concurrent save may replace the generation while we read it
        gen = _read_current(root)
        try:
            return _read_generation(_generation_dir(root, gen))
        except BioHashFormatError:
            if _read_current(root) == gen:
                raise


def serialize_state(state: IndexState) -> bytes:
    """The files of one saved generation in an uncompressed tar archive, as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in encode_files(state).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def deserialize_state(data: bytes) -> IndexState:
    """Inverse of ``serialize_state``, with all the checks of ``read_state``."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            files = {m.name: pa.py_buffer(tar.extractfile(m).read()) for m in tar.getmembers()
                     if m.isfile() and m.name in (MANIFEST, *FILES)}
    except (tarfile.TarError, EOFError, ValueError, OSError) as e:
        raise BioHashFormatError(f"serialized index: not a valid tar archive ({e})") from None
    for name in (MANIFEST, *FILES):
        if name not in files:
            raise BioHashFormatError(f"{name}: missing from the serialized index")
    return decode_files(files, "")


# ==================================================================== encoding
def encode_files(state: IndexState) -> dict[str, bytes]:
    """The bytes of every file of one generation, manifest.json included."""
    files = {"model.arrow": ipc_bytes(_model_table(state, __version__)),
             "meta.arrow": ipc_bytes(_meta_table(state)),
             "codes.faiss": faiss.serialize_index_binary(state.storage.index).tobytes()}
    manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                "library_version": __version__,
                "files": {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                          for name, data in files.items()}}
    files[MANIFEST] = json.dumps(manifest, indent=1).encode()
    return files


def _model_table(state: IndexState, version: str) -> pa.Table:
    prm = state.params
    cols = {"format_version": pa.array([FORMAT_VERSION], pa.int32()),
            "library_version": pa.array([version], pa.string())}
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
    return pa.table(cols)


def _meta_table(state: IndexState) -> pa.Table:
    storage = state.storage
    ivf = storage.kind == "ivf"
    ids = pa.array(storage.ids(), pa.int64())
    return pa.table({
        "ntotal": pa.array([storage.ntotal], pa.int64()),
        "next_id": pa.array([state.next_id], pa.int64()),
        "storage": pa.array([storage.kind], pa.string()),
        "nlist": pa.array([storage.nlist if ivf else None], pa.int64()),
        "nprobe": pa.array([storage.nprobe if ivf else None], pa.int64()),
        "n_threads": pa.array([state.n_threads], pa.int64()),
        "search_order": pa.array(["faiss" if ivf and storage.faiss_order else "id"]),
        "ids": pa.LargeListArray.from_arrays(pa.array([0, len(ids)], pa.int64()), ids),
    })


# ==================================================================== decoding
def decode_files(files: Mapping[str, pa.Buffer], where: str) -> IndexState:
    """The state in the buffers of manifest.json, model.arrow, meta.arrow and codes.faiss,
    after checking the manifest and every checksum, then that the files agree; ``where``
    (the directory) prefixes file names in error messages."""
    manifest = _parse_manifest(files[MANIFEST].to_pybytes(), os.path.join(where, MANIFEST))
    for name in FILES:
        _verify(files[name], manifest[name], os.path.join(where, name))
    model_file, meta_file, codes_file = (os.path.join(where, name) for name in FILES)
    model = _read_table(files["model.arrow"], model_file)
    meta = _read_table(files["meta.arrow"], meta_file)
    params = _params(model, model_file)
    kind, n_threads = _storage_settings(meta, meta_file)
    mean, weights, stats = _model_arrays(model, params, model_file)
    storage = _read_storage(files["codes.faiss"], kind, padded_code_size(params.code_size),
                            _search_order(meta, meta_file) == "faiss", codes_file)
    next_id = _check_meta(meta, storage, weights is not None, meta_file, codes_file)
    return IndexState(params, mean, weights, stats, storage, next_id, n_threads)


def _read_table(buf: pa.Buffer, name: str) -> pa.Table:
    try:
        table = pa.ipc.open_file(buf).read_all()
        table.validate(full=True)
    except (pa.ArrowException, ValueError, OSError) as e:
        raise BioHashFormatError(f"{name}: not a valid Arrow IPC file ({e})") from None
    if table.num_rows != 1:
        raise BioHashFormatError(f"{name}: expected one row, got {table.num_rows}")
    return table


def _column(table: pa.Table, column: str, name: str) -> pa.Array:
    if column not in table.column_names:
        raise BioHashFormatError(f"{name}: no column {column!r}")
    return table.column(column).chunk(0)


def _scalar(table: pa.Table, column: str, name: str):
    return _column(table, column, name)[0].as_py()


def _params(table: pa.Table, name: str) -> BioHashParams:
    version = _scalar(table, "format_version", name)
    if version not in READS_VERSIONS:
        raise BioHashFormatError(f"{name}: format version {version}, this library reads "
                                 f"{READS_VERSIONS}")
    values = {f.name: ADDED_PARAMS[f.name] if f.name in ADDED_PARAMS and f.name not in
              table.column_names else _scalar(table, f.name, name)
              for f in dataclasses.fields(BioHashParams)}
    try:
        return BioHashParams(**values)
    except (TypeError, ValueError) as e:
        raise BioHashFormatError(f"{name}: bad hyperparameters ({e})") from None


def _storage_settings(meta: pa.Table, name: str) -> tuple[str, int | None]:
    """The storage kind and n_threads of meta.arrow, checked; n_threads is lowered to what
    numba has here (a setting of the machine that saved it)."""
    kind, nlist, nprobe, n_threads = (_scalar(meta, col, name)
                                      for col in ("storage", "nlist", "nprobe", "n_threads"))
    if not isinstance(kind, str) or (kind == "ivf") != (nlist is not None and nprobe is not None):
        raise BioHashFormatError(f"{name}: bad storage {kind!r} (nlist={nlist}, nprobe={nprobe})")
    if kind not in STORAGE_TAGS:
        raise BioHashFormatError(f"{name}: storage must be one of {tuple(STORAGE_TAGS)}, "
                                 f"got {kind!r}")
    if isinstance(n_threads, int) and n_threads > numba.config.NUMBA_NUM_THREADS:
        n_threads = numba.config.NUMBA_NUM_THREADS
    try:
        return kind, check_n_threads(n_threads)
    except (TypeError, ValueError) as e:
        raise BioHashFormatError(f"{name}: {e}") from None


def _search_order(meta: pa.Table, name: str) -> str:
    """"id", or "faiss" for IVF storage searched in faiss's order: files without the
    column (saved before it existed) hold IVF storage that was (``IVFCodeStorage``)."""
    if "search_order" not in meta.column_names:
        return "faiss"
    order = _scalar(meta, "search_order", name)
    if order not in ("id", "faiss"):
        raise BioHashFormatError(f"{name}: search_order must be 'id' or 'faiss', got {order!r}")
    return order


def _model_arrays(table: pa.Table, prm: BioHashParams, name: str):
    """(mean, weights, train_stats) of model.arrow: mean and weights read-only views of
    ``table``'s buffers, or None for an untrained model."""
    vec = pa.list_(pa.float32(), prm.d)
    mean, weights = _column(table, "mean", name), _column(table, "weights", name)
    stats = _column(table, "train_stats", name)
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
        mu, W = mu.to_numpy(zero_copy_only=True), W.to_numpy(zero_copy_only=True)
        if not (np.isfinite(mu).all() and np.isfinite(W).all()):
            raise BioHashFormatError(f"{name}: mean or weights hold NaN or infinite values")
        W = W.reshape(prm.n_hidden, prm.d)
    stats = {f.name: np.asarray(stats.field(i)[0].as_py(), np.float64)
             for i, f in enumerate(stats.type)}
    return mu, W, stats


def _read_storage(buf: pa.Buffer, kind: str, code_size: int, faiss_order: bool,
                  name: str) -> FlatCodeStorage:
    """The faiss storage in ``buf`` (already checksum-verified), checked to be of ``kind``
    and of ``code_size``-byte codes; faiss_order: IVF searched in faiss's order."""
    tags = STORAGE_TAGS[kind]
    if buf.size < 4 or buf[:4].to_pybytes() not in tags:
        raise BioHashFormatError(f"{name}: not a faiss {kind} binary index "
                                 f"(expected the tag {tags[0]!r})")
    try:
        storage = storage_from_faiss(faiss.deserialize_index_binary(np.frombuffer(buf, np.uint8)),
                                     kind, faiss_order)
    except RuntimeError as e:
        raise BioHashFormatError(f"{name}: faiss cannot read it ({e})") from None
    except ValueError as e:   # an unsupported index type, or repeated ids
        raise BioHashFormatError(f"{name}: {e}") from None
    if storage.kind != kind or storage.index.code_size != code_size:
        raise BioHashFormatError(f"{name}: {storage.kind} storage of "
                                 f"{storage.index.code_size}-byte codes, expected {kind} "
                                 f"with {code_size}-byte codes")
    return storage


def _check_meta(meta: pa.Table, storage, trained: bool, meta_file: str,
                codes_file: str) -> int:
    """Check that meta.arrow agrees with the storage of codes.faiss and the model (trained
    or not); returns next_id."""
    ntotal = _scalar(meta, "ntotal", meta_file)
    if ntotal != storage.ntotal:
        raise BioHashFormatError(f"{codes_file}: holds {storage.ntotal} codes, {meta_file} says "
                                 f"ntotal={ntotal}")
    if storage.kind == "ivf" and (storage.nlist, storage.nprobe) != (
            _scalar(meta, "nlist", meta_file), _scalar(meta, "nprobe", meta_file)):
        raise BioHashFormatError(f"{codes_file}: nlist/nprobe differ from {meta_file}")
    if not trained and (ntotal or (storage.kind == "ivf" and storage.is_trained)):
        raise BioHashFormatError(f"{codes_file}: trained or filled storage for an untrained model")
    ids_col = _column(meta, "ids", meta_file)
    if ids_col.type != pa.large_list(pa.int64()):
        raise BioHashFormatError(f"{meta_file}: ids must be large_list<int64>, got {ids_col.type}")
    ids = ids_col.flatten().to_numpy(zero_copy_only=True)
    if not np.array_equal(ids, storage.ids()):
        raise BioHashFormatError(f"{meta_file}: ids differ from those in {codes_file}")
    next_id = _scalar(meta, "next_id", meta_file)
    if not isinstance(next_id, int) or (len(ids) and next_id <= ids.max()) or next_id < 0:
        raise BioHashFormatError(f"{meta_file}: next_id={next_id} must exceed every stored id")
    return next_id


# ==================================================================== verification
def _parse_manifest(data: bytes, name: str) -> dict:
    """{file name: {"size", "sha256"}} of a manifest, after checking format and version."""
    try:
        manifest = json.loads(data)
        files = manifest["files"]
        fmt, version = manifest["format"], manifest["format_version"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise BioHashFormatError(f"{name}: not a valid manifest ({e!r})") from None
    if fmt != FORMAT_NAME:
        raise BioHashFormatError(f"{name}: format {fmt!r}, expected {FORMAT_NAME!r}")
    if version not in READS_VERSIONS:
        raise BioHashFormatError(f"{name}: format version {version!r}, this library reads "
                                 f"{READS_VERSIONS} (library {manifest.get('library_version')!r})")
    if not isinstance(files, dict) or sorted(files) != sorted(FILES) or not all(
            isinstance(e, dict) and isinstance(e.get("size"), int)
            and isinstance(e.get("sha256"), str) for e in files.values()):
        raise BioHashFormatError(f"{name}: must list size and sha256 of exactly {FILES}")
    return files


def _verify(data, entry: dict, name: str) -> None:
    size = memoryview(data).nbytes
    if size != entry["size"]:
        raise BioHashFormatError(f"{name}: {size} bytes, the manifest says {entry['size']} "
                                 "(truncated or replaced)")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise BioHashFormatError(f"{name}: sha256 checksum mismatch (corrupted)")


def _read_current(root: Path) -> str:
    path = root / CURRENT
    try:
        gen = read_regular_file(path, limit=MAX_CURRENT_BYTES).decode("ascii").strip()
    except UnicodeDecodeError as e:
        raise BioHashFormatError(f"{path}: unreadable ({e})") from None
    if not GENERATION.fullmatch(gen):
        raise BioHashFormatError(f"{path}: does not name a generation (got {gen!r})")
    return gen


def _generation_dir(root: Path, gen: str) -> Path:
    """root/gen, which must be a directory of its own, not a link to one elsewhere."""
    path = root / gen
    if path.is_symlink():
        raise BioHashFormatError(f"{path}: a symbolic link (not followed)")
    return path


def _read_generation(gen: Path) -> IndexState:
    """Load one generation directory.

    The manifest is read first: it gives the size of each file, checked before the file is
    read. The Arrow files are memory-mapped (the loaded weights stay views of the map);
    codes.faiss is read into private memory, so the bytes faiss parses are the ones whose
    checksum was verified.
    """
    manifest = read_regular_file(gen / MANIFEST, limit=MAX_MANIFEST_BYTES)
    entries = _parse_manifest(manifest, str(gen / MANIFEST))
    buffers = {MANIFEST: pa.py_buffer(manifest)}
    for name in FILES:
        size = entries[name]["size"]
        buffers[name] = (map_regular_file(gen / name, size) if name.endswith(".arrow")
                         else pa.py_buffer(read_regular_file(gen / name, size=size)))
    return decode_files(buffers, str(gen))


# ==================================================================== writing a generation
def _write_files(gen: Path, files: Mapping[str, bytes]) -> None:
    os.mkdir(gen)
    for name, data in files.items():
        write_new_file(gen / name, data)
    fsync_dir(gen)


def _new_generation() -> str:
    return f"gen-{secrets.token_hex(8)}"


def _create_index_dir(root: Path, files: Mapping[str, bytes]) -> bool:
    """Build a whole index directory in a temporary sibling and rename it to ``root``.

    Returns False (and cleans up) when ``root`` appeared meanwhile, e.g. a concurrent save.
    """
    tmp = root.with_name(f".{root.name}.tmp-{secrets.token_hex(8)}")
    try:
        try:
            os.mkdir(tmp)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "cannot save the index: its parent directory "
                                    f"{str(root.parent)!r} does not exist", str(root)) from None
        gen = _new_generation()
        write_new_file(tmp / MARKER, MARKER_TEXT)
        _write_files(tmp / gen, files)
        write_new_file(tmp / CURRENT, f"{gen}\n".encode())
        write_new_file(tmp / LOCK, b"")
        fsync_dir(tmp)
        try:
            os.rename(tmp, root)
        except OSError:
            if root.is_dir():
                return False
            raise
        fsync_dir(root.parent)
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing left to remove after the rename


def _write_generation(root: Path, files: Mapping[str, bytes]) -> None:
    """Write a new generation into an index directory and make it current.

    Under the directory's lock: write the marker if it is missing, write and fsync
    ``gen-*``, replace CURRENT (the commit), fsync the directory, then remove the other
    generations and leftovers of interrupted saves (only what a save writes: see
    ``_remove_leftovers``); that last step is best effort and repeated by the next save.
    """
    with _locked(root):
        if not os.path.lexists(root / MARKER):
            write_new_file(root / MARKER, MARKER_TEXT)
        elif not _holds_marker(root):
            raise BioHashFormatError(f"{root / MARKER}: not this library's marker; refusing "
                                     "to save into the directory")
        gen = _new_generation()
        pointer = root / f".{CURRENT}.tmp-{gen}"
        try:
            _write_files(root / gen, files)
            write_new_file(pointer, f"{gen}\n".encode())
            os.replace(pointer, root / CURRENT)
        except BaseException:
            _remove_generation(root / gen)
            if pointer.exists():
                pointer.unlink()
            raise
        fsync_dir(root)
        _remove_leftovers(root, gen)


def _remove_leftovers(root: Path, keep: str) -> None:
    """Remove the generations other than ``keep`` and CURRENT's temporary files; every other
    entry of ``root`` stays (best effort: the next save tries again)."""
    for entry in os.listdir(root):
        if GENERATION.fullmatch(entry) and entry != keep:
            _remove_generation(root / entry)
        elif POINTER_TMP.fullmatch(entry):
            _remove_if_regular(root / entry)


def _remove_generation(path: Path) -> None:
    """Remove a generation directory: the files a save writes into it, then the directory
    if that emptied it; a link, or anything else in it, is left alone."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return
        for name in (MANIFEST, *FILES):
            _remove_if_regular(path / name)
        os.rmdir(path)
    except OSError:
        pass


def _remove_if_regular(path: Path) -> None:
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


# ==================================================================== whose directory
def _holds_marker(root: Path) -> bool:
    try:
        return read_regular_file(root / MARKER, limit=len(MARKER_TEXT)) == MARKER_TEXT
    except BioHashFormatError:
        return False


def _holds_index(root: Path) -> bool:
    """Whether the directory ``root`` holds an index this library saved: it has the marker,
    or, without one, CURRENT names a generation directory whose manifest is of this
    format (docs/format.md)."""
    if os.path.lexists(root / MARKER):
        return _holds_marker(root)
    try:
        gen = _generation_dir(root, _read_current(root))
        manifest = json.loads(read_regular_file(gen / MANIFEST, limit=MAX_MANIFEST_BYTES))
    except (BioHashFormatError, ValueError, RecursionError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME


def _is_empty(root: Path) -> bool:
    """Nothing in ``root``, or only the empty LOCK file a save interrupted at once leaves."""
    entries = os.listdir(root)
    return not entries or (entries == [LOCK] and _is_empty_file(root / LOCK))


def _is_empty_file(path: Path) -> bool:
    st = os.lstat(path)
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


@contextmanager
def _locked(root: Path):
    """Exclusive lock on ``root/LOCK`` for the duration of a save (POSIX only). LOCK must
    be a regular file: a link is not followed (nor its target created)."""
    if fcntl is None:
        yield
        return
    path = root / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | SAFE_OPEN, 0o644)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise BioHashFormatError(f"{path}: a symbolic link (not followed)") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BioHashFormatError(f"{path}: not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
