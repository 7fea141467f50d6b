"""The index directory: generations of the index format (``index``) in a directory, saved
atomically and loaded while saves replace them.

An index on disk is a directory (layout: docs/format.md)::

    path/BIOHASH_INDEX      marks the directory as this library's: one line, MARKER_TEXT
    path/CURRENT            one line: the name of the live generation, e.g. "gen-5f0c..."
    path/LOCK               serializes concurrent saves (flock), empty
    path/gen-<hex>/         one complete saved generation, never modified after it is written

A save writes and fsyncs a new generation, then atomically replaces ``CURRENT`` (the commit
point) and removes the other generations; it deletes nothing it did not write, and a save
that fails before its commit removes what it wrote. A load opens regular files only (no
symbolic links, FIFOs or devices), knows every file's size from the manifest before reading
it, and decodes the generation with ``index.decode_files``.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

import pyarrow as pa

from ._io import (SAFE_OPEN, BioHashFormatError, fsync_dir, map_regular_file, parse_json,
                  read_regular_file, write_new_file)
from .index import (FILES, FORMAT_NAME, MANIFEST, MAX_MANIFEST_BYTES, IndexState,
                    decode_files, encode_files, parse_manifest)

try:
    import fcntl
except ImportError:  # not POSIX: saves to one path must not run concurrently
    fcntl = None

CURRENT = "CURRENT"
LOCK = "LOCK"
MARKER = "BIOHASH_INDEX"
MARKER_TEXT = b"biohash-index directory\n"
GENERATION = re.compile(r"gen-[0-9a-f]{16}")
POINTER_TMP = re.compile(r"\.CURRENT\.tmp-gen-[0-9a-f]{16}")  # a save's CURRENT before the rename
MAX_CURRENT_BYTES = 64
GENERATION_FILES = {name for files in FILES.values() for name in files}  # of any version


# ==================================================================== saving and loading
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
    if not root.is_dir():
        raise BioHashFormatError(f"{root}: not a saved index ("
                                 f"{'not a directory' if root.exists() else 'no such directory'})")
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


def read_format_version(path) -> int:
    """The format version of the index saved in the directory ``path`` (its manifest's)."""
    root = Path(path)
    gen = root if os.path.lexists(root / MANIFEST) else _generation_dir(root, _read_current(root))
    return _read_manifest(gen)["format_version"]


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
    data = read_regular_file(gen / MANIFEST, limit=MAX_MANIFEST_BYTES)
    buffers = {MANIFEST: pa.py_buffer(data)}
    for name, entry in parse_manifest(data, str(gen / MANIFEST))["files"].items():
        buffers[name] = (map_regular_file(gen / name, entry["size"]) if name.endswith(".arrow")
                         else pa.py_buffer(read_regular_file(gen / name, size=entry["size"])))
    return decode_files(buffers, lambda name: str(gen / name))


def _read_manifest(gen: Path) -> dict:
    return parse_manifest(read_regular_file(gen / MANIFEST, limit=MAX_MANIFEST_BYTES),
                          str(gen / MANIFEST))


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
        new_marker = not os.path.lexists(root / MARKER)
        if not new_marker and not _holds_marker(root):
            raise BioHashFormatError(f"{root / MARKER}: not this library's marker; refusing "
                                     "to save into the directory")
        gen = _new_generation()
        pointer = root / f".{CURRENT}.tmp-{gen}"
        try:
            if new_marker:
                write_new_file(root / MARKER, MARKER_TEXT)
            _write_files(root / gen, files)
            write_new_file(pointer, f"{gen}\n".encode())
            os.replace(pointer, root / CURRENT)
        except BaseException:   # not committed: remove what this save wrote
            _remove_generation(root / gen)
            _remove_if_regular(pointer)
            if new_marker:
                _remove_if_regular(root / MARKER)
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
        for name in (MANIFEST, *GENERATION_FILES):
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
        manifest = parse_json(read_regular_file(gen / MANIFEST, limit=MAX_MANIFEST_BYTES),
                              str(gen / MANIFEST))
    except BioHashFormatError:
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
