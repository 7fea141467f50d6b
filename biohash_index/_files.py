"""Reading and writing files safely, for every file format of this library.

Reading opens regular files only (no symbolic links, FIFOs or devices) and checks a file's
size before reading it. Writing is atomic: into a temporary sibling, fsynced, then renamed
over the target, so a failed write leaves the previous file intact.
"""
from __future__ import annotations

import errno
import mmap
import os
import secrets
import stat
from pathlib import Path

import pyarrow as pa

# opening a file to read never follows a symbolic link, nor waits for a FIFO's writer
SAFE_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class BioHashFormatError(ValueError):
    """A saved index is missing, incomplete, corrupted or inconsistent; names the file."""


# ==================================================================== reading
def read_regular_file(path: Path, size: int | None = None, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (not a link, FIFO or device), of ``size`` bytes
    or at most ``limit``, or a BioHashFormatError naming it: the size is checked before
    anything is read, and no more than it is read."""
    fd = _open_regular(path)
    try:
        have = _file_size(fd, path, size, limit)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(have + 1)
    except OSError as e:
        raise BioHashFormatError(f"{path}: cannot read it ({e.strerror or e})") from None
    finally:
        os.close(fd)
    if len(data) != have:
        raise BioHashFormatError(f"{path}: changed while it was read")
    return data


def map_regular_file(path: Path, size: int) -> pa.Buffer:
    """The regular file ``path`` of ``size`` bytes, memory-mapped read-only."""
    fd = _open_regular(path)
    try:
        _file_size(fd, path, size, None)
        return pa.py_buffer(mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else b"")
    except OSError as e:
        raise BioHashFormatError(f"{path}: cannot map it ({e.strerror or e})") from None
    finally:
        os.close(fd)


def read_ipc_file(path) -> pa.Table:
    """The table of the Arrow IPC file ``path`` (memory-mapped), or a BioHashFormatError
    naming it."""
    try:
        with pa.memory_map(str(path)) as source:
            return pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        raise BioHashFormatError(f"{path}: not an Arrow IPC file ({e})") from None


def _open_regular(path: Path) -> int:
    """A read-only file descriptor of ``path``, which must be a regular file: a symbolic
    link is not followed, and a FIFO or a device is refused without waiting on it."""
    try:
        fd = os.open(path, os.O_RDONLY | SAFE_OPEN)
    except FileNotFoundError:
        raise BioHashFormatError(f"{path}: missing") from None
    except OSError as e:
        why = "a symbolic link (not followed)" if e.errno == errno.ELOOP else e.strerror or e
        raise BioHashFormatError(f"{path}: cannot read it ({why})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BioHashFormatError(f"{path}: not a regular file")
    return fd


def _file_size(fd: int, path: Path, size: int | None, limit: int | None) -> int:
    """The size of the open file, checked to be ``size`` exactly or at most ``limit``."""
    have = os.fstat(fd).st_size
    if size is not None and have != size:
        raise BioHashFormatError(f"{path}: {have} bytes, the manifest says {size} "
                                 "(truncated or replaced)")
    if limit is not None and have > limit:
        raise BioHashFormatError(f"{path}: too large ({have} bytes, at most {limit})")
    return have


# ==================================================================== writing
def write_new_file(path: Path, data: bytes) -> None:
    """Write a new file (refused if ``path`` exists) and fsync it."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_bytes_atomic(data: bytes, path) -> None:
    """Write ``data`` to ``path`` atomically: into a temporary sibling, fsynced, then renamed
    over ``path``. A failed write leaves the old file intact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(8)}")
    try:
        write_new_file(tmp, data)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_table_atomic(table: pa.Table, path) -> None:
    """Write ``table`` as one Arrow IPC file at ``path``, atomically (``write_bytes_atomic``)."""
    write_bytes_atomic(ipc_bytes(table), path)


def ipc_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of an Arrow IPC file."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed files) durable."""
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
