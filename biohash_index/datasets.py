"""Readers for the usual benchmark formats (IDX, fvecs, ivecs, bvecs) and demo data."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from faiss.contrib import vecs_io

__all__ = ["read_fvecs", "read_ivecs", "read_bvecs", "read_idx", "load_ann", "load_mnist",
           "label_split", "load_digits", "load_vectors"]


def _check_vecs(path, item: int) -> None:
    """Raise a ValueError naming ``path`` unless it is a .fvecs/.ivecs/.bvecs file whose rows
    all hold an int32 d >= 1, then d values of ``item`` bytes."""
    path = Path(path)
    kind = path.suffix or "vecs"
    size = path.stat().st_size
    if size < 4:
        what = "is empty" if size == 0 else f"has {size} bytes"
        raise ValueError(f"{path}: not a {kind} file: it {what}, less than one vector "
                         "(a 4-byte dimension, then the values)")
    d = int(np.fromfile(path, np.int32, 1)[0])
    row = 4 + d * item
    if d <= 0:
        raise ValueError(f"{path}: not a {kind} file: the first vector declares dimension {d}, "
                         "not >= 1")
    if size % row:
        raise ValueError(f"{path}: not a {kind} file (truncated?): the first vector declares "
                         f"dimension {d}, so rows of {row} bytes, but the file has {size} bytes "
                         f"({size // row} rows and {size % row} bytes more)")
    dims = np.memmap(path, np.int32 if item == 4 else np.uint8, mode="r")
    dims = dims.reshape(-1, row // dims.itemsize)[:, :4 // dims.itemsize]
    if not (np.ascontiguousarray(dims).view(np.int32) == d).all():
        raise ValueError(f"{path}: not a valid {kind} file: rows of different dimensions "
                         f"(the first has {d})")


def _read_vecs(path, reader, item: int) -> np.ndarray:
    """(n, d) memory-mapped rows of a vecs file, read by ``faiss.contrib.vecs_io``."""
    _check_vecs(path, item)
    return reader(str(path))


def read_fvecs(path) -> np.ndarray:
    """float32 (n, d) from an .fvecs file, memory-mapped (read-only)."""
    return _read_vecs(path, vecs_io.fvecs_mmap, 4)


def read_ivecs(path) -> np.ndarray:
    """int32 (n, d) from an .ivecs file, memory-mapped (read-only)."""
    return _read_vecs(path, vecs_io.ivecs_mmap, 4)


def read_bvecs(path) -> np.ndarray:
    """uint8 (n, d) from a .bvecs file, memory-mapped (read-only)."""
    return _read_vecs(path, vecs_io.bvecs_mmap, 1)


VECS_READERS = {".fvecs": read_fvecs, ".ivecs": read_ivecs, ".bvecs": read_bvecs}


def load_ann(folder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An ANN benchmark set stored as ``<name>_base``, ``<name>_query`` (.fvecs or .bvecs)
    and ``<name>_groundtruth.ivecs`` in ``folder`` (named ``<name>``), as siftsmall ships.

    Returns base float32 (n, d), queries float32 (nq, d), exact neighbours int64 (nq, K).
    """
    folder = Path(folder)

    def read(part, exts):
        for ext in exts:
            path = folder / f"{folder.name}_{part}{ext}"
            if path.exists():
                return VECS_READERS[ext](path)
        raise FileNotFoundError(f"{folder}: no {folder.name}_{part} with suffix in {exts}")

    xb = read("base", (".fvecs", ".bvecs")).astype(np.float32)
    xq = read("query", (".fvecs", ".bvecs")).astype(np.float32)
    gt = read("groundtruth", (".ivecs",)).astype(np.int64)
    if xb.shape[1] != xq.shape[1] or len(gt) != len(xq):
        raise ValueError(f"{folder}: base {xb.shape}, queries {xq.shape} and ground truth "
                         f"{gt.shape} do not match")
    return xb, xq, gt


def read_idx(path) -> np.ndarray:
    """The array in an IDX file (as MNIST ships them), gzip-compressed or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except gzip.BadGzipFile as e:
        raise ValueError(f"{path}: not an IDX file ({e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ValueError(f"{path}: unknown IDX data type {data[2]:#x}")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need "
                         f"{4 + 4 * ndim} bytes, the file has {len(data)}")
    shape = tuple(int(v) for v in np.frombuffer(data, ">u4", ndim, 4))
    arr = np.frombuffer(data, dtypes[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: IDX header says {shape}, found {arr.size} values")
    return arr.reshape(shape).astype(arr.dtype.newbyteorder("="))


def load_mnist(folder) -> tuple[np.ndarray, np.ndarray]:
    """MNIST test images as float32 (10000, 784) in [0, 1] and int64 labels from a folder
    holding ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``."""
    folder = Path(folder)

    def find(stem):
        for name in (stem + ".gz", stem):
            if (folder / name).exists():
                return folder / name
        raise FileNotFoundError(f"{folder}: no {stem}[.gz]")

    images = read_idx(find("t10k-images-idx3-ubyte"))
    labels = read_idx(find("t10k-labels-idx1-ubyte"))
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    return x, labels.astype(np.int64)


def label_split(labels: np.ndarray, per_class: int = 100, seed: int | None = None):
    """Query / database split of the BioHash paper: ``per_class`` queries of each label.

    seed None takes the first ``per_class`` items of each label in file order (the protocol
    of BENCHMARKS.md); an integer draws them at random. Returns int64 (query, database) rows.
    """
    rng = None if seed is None else np.random.default_rng(seed)
    q = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        q.append(rows[:per_class] if rng is None else rng.choice(rows, per_class, replace=False))
    q = np.sort(np.concatenate(q))
    return q, np.setdiff1d(np.arange(len(labels)), q)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 1,797 8x8 digits as float32 (1797, 64) in [0, 1] and labels."""
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the built-in demo data needs scikit-learn: "
                          "pip install 'biohash-index[demo]'") from e
    ds = sk_digits()
    return (ds.data / 16.0).astype(np.float32), ds.target.astype(np.int64)


TABLES = (".parquet", ".arrow", ".feather", ".ipc")  # Parquet and Arrow IPC files


def load_vectors(path, column: str | None = None) -> np.ndarray:
    """The array in a file, chosen by its extension, rows first: (n, d) vectors or (n,) values.

    Reads .npy (no pickles), .fvecs, .ivecs, .bvecs, IDX (``*-ubyte`` or ``*.idx``, optionally
    ``.gz``; images (n, h, w) come back as (n, h * w)), and Parquet (.parquet) or Arrow IPC
    (.arrow, .feather, .ipc) tables, or a directory of Parquet files: ``column`` names a list
    column (-> float32 (n, d)) or a scalar one (-> (n,)); None takes the table's only column,
    or else its only list column.
    """
    path = Path(path)
    if path.is_dir():
        return _table_column(path, column)
    if not path.is_file():
        if path.exists():
            raise ValueError(f"{path}: not a regular file (a FIFO, device or socket is not "
                             "read)")
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if path.name.lower().removesuffix(".gz").endswith(("ubyte", ".idx")):
        arr = read_idx(path)
        return arr.reshape(len(arr), -1) if arr.ndim > 2 else arr
    if suffix in TABLES:
        return _table_column(path, column)
    readers = {".npy": lambda p: np.load(p, allow_pickle=False), ".fvecs": read_fvecs,
               ".ivecs": read_ivecs, ".bvecs": read_bvecs}
    if suffix not in readers:
        raise ValueError(f"{path}: unknown file type; expected .npy, .fvecs, .ivecs, .bvecs, "
                         f"IDX (*-ubyte[.gz]) or a table ({', '.join(TABLES)})")
    return readers[suffix](path)


def _table_column(path: Path, column: str | None) -> np.ndarray:
    """One column of a Parquet or Arrow IPC table (a file, or a directory of Parquet files):
    list columns become float32 (n, d)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from ._streaming import arrow_vectors, is_list_type, vector_column

    ipc = path.suffix.lower() in (".arrow", ".feather", ".ipc")
    dataset = ds.dataset(path, format="ipc" if ipc else "parquet")
    schema = dataset.schema
    if column is None and len(schema.names) == 1:
        column = schema.names[0]
    column = vector_column(schema, column)
    col = dataset.to_table(columns=[column]).column(column)
    col = col.combine_chunks()
    name = f"{path}: column {column!r}"
    if is_list_type(col.type):
        return arrow_vectors(col, pc.max(pc.list_value_length(col)).as_py() or 0, name)
    if col.null_count:
        raise ValueError(f"{name} contains {col.null_count} nulls")
    return col.to_numpy()
