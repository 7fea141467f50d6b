"""The one-file form of a saved index, as ``faiss.write_index`` writes one file: the tar of
one generation of the index format (``index.serialize_state``), written atomically.

``write_index`` and ``read_index`` take either form; ``saves_to_file`` says which a path
means (docs/format.md): an existing directory, a path ending in a separator or a new path
without a suffix (``indexes/sift``) is a directory (``index_dir``); an existing file or a new
path with a suffix (``index.faiss``, ``sift.index``) is one file.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from . import index_dir
from ._io import BioHashFormatError, source_buffer, tar_members, write_bytes_atomic
from .index import MANIFEST, MAX_MANIFEST_BYTES, IndexState, deserialize_state, parse_manifest, \
    tar_parts

HEAD_BYTES = 64   # every saved index file starts with the same bytes (the tar header)


def saves_to_file(path) -> bool:
    """Whether ``path`` means one file rather than a directory: an existing file, or a new
    path with a suffix that does not end in a separator."""
    text = os.fspath(path)
    if text.endswith(tuple(sep for sep in (os.sep, os.altsep) if sep)) or os.path.isdir(text):
        return False
    return os.path.lexists(text) or bool(Path(text).suffix)


def write_file(state: IndexState, path) -> None:
    """Save ``state`` as the one file ``path``, atomically; an existing file is replaced only
    if it is empty or a saved index file (anything else: ValueError, nothing touched)."""
    parts = tar_parts(state)
    if os.path.lexists(path) and not _replaceable(Path(path), parts[0]):
        raise ValueError(f"path {os.fspath(path)!r} exists and is not a directory nor a saved "
                         "index file; refusing to replace it")
    write_bytes_atomic(parts, path)


def read_file(path) -> IndexState:
    """The state saved in the one file ``path`` (``BioHashFormatError`` naming it)."""
    try:
        return deserialize_state(path)
    except BioHashFormatError as e:
        raise BioHashFormatError(f"{os.fspath(path)}: not a saved index file ({e})") from None


def write(state: IndexState, path) -> None:
    """Save ``state`` to ``path``, one file or a directory as ``saves_to_file`` says."""
    if saves_to_file(path):
        write_file(state, path)
    else:
        index_dir.write_state(state, path)


def read(path) -> IndexState:
    """The state saved at ``path``: a directory (or one generation directory), or one file."""
    if not os.path.lexists(path) or os.path.isdir(path):
        return index_dir.read_state(path)
    return read_file(path)


def read_format_version(path) -> int:
    """The format version of the index saved at ``path``, either form (its manifest's)."""
    if not os.path.lexists(path) or os.path.isdir(path):
        return index_dir.read_format_version(path)
    buf, name = source_buffer(path, "index file")
    members = tar_members(buf, name, {MANIFEST: MAX_MANIFEST_BYTES})
    if MANIFEST not in members:
        raise BioHashFormatError(f"{name}: {MANIFEST}: missing")
    return parse_manifest(members[MANIFEST].to_pybytes(), f"{name}: {MANIFEST}")["format_version"]


def _replaceable(path: Path, head_part: bytes) -> bool:
    """Whether the existing ``path`` is a regular file that may be replaced by a saved
    index whose first part (its first tar header) is ``head_part``: empty, or beginning as
    it begins."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        return False
    return not head or head == head_part[:HEAD_BYTES]
