"""The one hardened reader of every file format, and the atomic writers.

Reading: a decoder takes a path or bytes (``source_buffer``). A path is opened as a regular
file only (no symbolic link is followed, a FIFO or a device is refused without waiting on
it), its size is known before anything is read, and no more than that is read or mapped.
The containers inside are read with what they declare checked against the bytes present
before anything is allocated: a tar archive (``tar_members``: regular members only, each
capped, zero-copy views of the input), an Arrow IPC file (``read_ipc``: uncompressed record
batches only, so a buffer never expands, then fully validated) and JSON (``parse_json``).
Every problem is a ``BioHashFormatError`` naming the file and the part.

Writing is atomic: into a temporary sibling, fsynced, then renamed over the target (or, for
``publish_new_file``, linked to a name that must not exist), so a failed write leaves the
previous file intact, and a failed write removes what it wrote.
"""
from __future__ import annotations

import errno
import json
import mmap
import os
import secrets
import stat
import struct
from pathlib import Path

import pyarrow as pa

# opening a file to read never follows a symbolic link, nor waits for a FIFO's writer
SAFE_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
TAR_BLOCK = 512


class BioHashFormatError(ValueError):
    """A saved file is missing, incomplete, corrupted or inconsistent; names the file."""


# ==================================================================== files
def source_buffer(source, what: str) -> tuple[pa.Buffer, str]:
    """(buffer, name) of a decoder's input: a path (str or os.PathLike) to a regular file,
    memory-mapped read-only, or bytes-like data (bytes, bytearray, memoryview, pyarrow
    Buffer), used as it is; name is the path, or ``what`` for data."""
    if isinstance(source, (str, os.PathLike)):
        return map_regular_file(Path(source)), str(source)
    if isinstance(source, pa.Buffer):
        return source, what
    if isinstance(source, (bytes, bytearray, memoryview)):
        return pa.py_buffer(source), what
    raise TypeError(f"{what} must be a path or bytes, got {type(source).__name__}")


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


def map_regular_file(path: Path, size: int | None = None) -> pa.Buffer:
    """The regular file ``path`` (of ``size`` bytes, if given), memory-mapped read-only."""
    fd = _open_regular(path)
    try:
        size = _file_size(fd, path, size, None)
        return pa.py_buffer(mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size else b"")
    except OSError as e:
        raise BioHashFormatError(f"{path}: cannot map it ({e.strerror or e})") from None
    finally:
        os.close(fd)


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


# ==================================================================== containers
def tar_members(data: pa.Buffer, name: str, limits: dict[str, int]) -> dict[str, pa.Buffer]:
    """The regular members of the ustar archive ``data`` named in ``limits``, as zero-copy
    slices of it; ``limits`` maps a member's name to the most bytes its format allows.

    Only the members this library writes are read: regular files (any other member, a
    link, a directory, a GNU sparse file or an extended header, is skipped over: its name
    is then missing). Each header's checksum, its octal size (a base-256 size is refused)
    and that size against the bytes present are checked before the member is used, so a
    member declaring more than the archive holds allocates nothing.
    """
    out, pos, view = {}, 0, memoryview(data)
    while pos + TAR_BLOCK <= len(view):
        header = bytes(view[pos:pos + TAR_BLOCK])
        if header == bytes(TAR_BLOCK):
            break
        member, size, kind = _tar_header(header, name, pos)
        start = pos + TAR_BLOCK
        if size > len(view) - start:
            raise BioHashFormatError(f"{name}: member {member!r} declares {size} bytes, the "
                                     f"archive holds {len(view) - start} after its header")
        if kind in (b"0", b"\0") and member in limits:
            if size > limits[member]:
                raise BioHashFormatError(f"{name}: member {member!r}: {size} bytes, more than "
                                         f"the {limits[member]} its format allows")
            if member in out:
                raise BioHashFormatError(f"{name}: member {member!r} appears twice")
            out[member] = data.slice(start, size)
        pos = start + -(-size // TAR_BLOCK) * TAR_BLOCK
    return out


def _tar_header(header: bytes, name: str, pos: int) -> tuple[str, int, bytes]:
    """(member name, size, type flag) of one ustar header block, checked."""
    try:
        stored = int(header[148:156].strip(b" \0") or b"-1", 8)
    except ValueError:
        stored = -1
    if stored != sum(header[:148]) + 8 * ord(" ") + sum(header[156:]):
        raise BioHashFormatError(f"{name}: not a tar archive (bad header checksum at byte {pos})")
    prefix, member = header[345:500].split(b"\0")[0], header[:100].split(b"\0")[0]
    member = (prefix + b"/" + member if prefix else member).decode("utf-8", "replace")
    if header[124] & 0x80:
        raise BioHashFormatError(f"{name}: member {member!r}: a base-256 size (this library "
                                 "writes octal sizes)")
    try:
        size = int(header[124:136].strip(b" \0") or b"0", 8)
    except ValueError:
        raise BioHashFormatError(f"{name}: member {member!r}: unreadable size "
                                 f"{header[124:136]!r}") from None
    return member, size, header[156:157]


def read_ipc(data: pa.Buffer, name: str) -> pa.Table:
    """The table of the Arrow IPC file ``data``, fully validated, or a BioHashFormatError
    naming ``name``.

    Read as the stream of messages after the file's magic bytes (the ones checked are the
    ones read): a schema, then record batches, whose buffers must be uncompressed. This
    library never compresses them, and a compressed buffer (zstd, lz4) would be expanded
    to the size it declares before any check; dictionaries are refused too. Uncompressed
    buffers are zero-copy slices of ``data``. The file's footer must be whole and list as
    many record batches (a truncated file is refused).
    """
    try:
        if data.size < 12 or data.slice(0, 6).to_pybytes() != b"ARROW1" or \
                data.slice(data.size - 6).to_pybytes() != b"ARROW1":
            raise ValueError("no Arrow file magic bytes at its start and end (truncated?)")
        footer_batches = pa.ipc.open_file(data).num_record_batches
        messages = pa.ipc.MessageReader.open_stream(pa.BufferReader(data.slice(8)))
        schema, batches = None, []
        for message in messages:
            if message.type == "schema" and schema is None:
                schema = pa.ipc.read_schema(message)
            elif message.type == "record batch" and schema is not None:
                if _compressed(message.metadata):
                    raise ValueError("a record batch of compressed buffers (this library "
                                     "writes them uncompressed)")
                batches.append(pa.ipc.read_record_batch(message, schema))
            else:
                raise ValueError(f"unexpected {message.type} message")
        if schema is None:
            raise ValueError("no schema")
        if len(batches) != footer_batches:
            raise ValueError(f"{len(batches)} record batches, the footer lists {footer_batches}")
        table = pa.Table.from_batches(batches, schema)
        table.validate(full=True)
    except (pa.ArrowException, ValueError, OSError, struct.error) as e:
        raise BioHashFormatError(f"{name}: not a valid Arrow IPC file ({e})") from None
    return table


def _compressed(metadata: pa.Buffer) -> bool:
    """Whether a record batch message's flatbuffer metadata declares compressed buffers:
    its Message table's header (field 2) is a RecordBatch table with a compression
    (field 3). Arrow's format, Message.fbs."""
    md = metadata.to_pybytes()
    header = _table_field(md, struct.unpack_from("<I", md, 0)[0], 2)
    if header is None:
        raise ValueError("a record batch message without a header")
    return _table_field(md, header + struct.unpack_from("<I", md, header)[0], 3) is not None


def _table_field(md: bytes, table: int, field: int) -> int | None:
    """The position of ``field`` of the flatbuffer table at ``table``, None if absent."""
    vtable = table - struct.unpack_from("<i", md, table)[0]
    if 4 + 2 * field + 2 > struct.unpack_from("<H", md, vtable)[0]:
        return None
    offset = struct.unpack_from("<H", md, vtable + 4 + 2 * field)[0]
    return table + offset if offset else None


def parse_json(data: bytes | str, name: str):
    """The value of the JSON text ``data``, or a BioHashFormatError naming ``name`` (also
    for nesting too deep for the parser)."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:   # UnicodeDecodeError is a ValueError
        raise BioHashFormatError(f"{name}: not valid JSON ({type(e).__name__}: "
                                 f"{str(e)[:200]})") from None


# ==================================================================== writing
def write_new_file(path: Path, data) -> None:
    """Write a new file (refused if ``path`` exists) and fsync it; if that fails (a full
    disk), the file is removed. data: bytes-like, or a list of bytes-like parts written in
    turn (never joined in one copy)."""
    with open(path, "xb") as f:
        try:
            for part in data if isinstance(data, list) else [data]:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            os.unlink(path)
            raise


def write_bytes_atomic(data, path) -> None:
    """Write ``data`` (bytes-like, or a list of parts as ``write_new_file`` takes) to
    ``path`` atomically: into a temporary sibling, fsynced, then renamed over ``path``. A
    failed write leaves the old file intact."""
    _write_through_sibling(data, Path(path), os.replace)


def publish_new_file(data: bytes, path) -> None:
    """Create the file ``path`` holding ``data``, all at once, only if ``path`` does not exist
    (``FileExistsError`` otherwise): written and fsynced as a temporary sibling, then
    hard-linked to ``path``. ``link`` is atomic and exclusive on local and network file
    systems (NFS included), so of writers racing for one name exactly one succeeds, and a
    reader never sees the file partly written."""
    _write_through_sibling(data, Path(path), os.link)


def _write_through_sibling(data, path: Path, place) -> None:
    """Write ``data`` to a temporary sibling of ``path`` and fsync it, ``place(tmp, path)``,
    fsync the directory; the temporary file is removed whatever happens."""
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(8)}")
    try:
        write_new_file(tmp, data)
        place(tmp, path)
        fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def ipc_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of an Arrow IPC file (uncompressed)."""
    return ipc_buffer(table).to_pybytes()


def ipc_buffer(table: pa.Table) -> pa.Buffer:
    """``table`` as an Arrow IPC file (uncompressed), in the buffer pyarrow wrote (no copy)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed files) durable."""
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
