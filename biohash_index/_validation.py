"""Input checks shared by the whole package: one place that says what was expected."""
from __future__ import annotations

import functools
import math
import numbers
import os

import numba
import numpy as np

from ._lengths import LENGTH_BITS

INT64_MAX = int(np.iinfo(np.int64).max)
MAX_ID = INT64_MAX - 1   # so that the next id add() would use, max id + 1, is an int64 too
MISSING_ID = -1          # what search returns in I where there is no result
# Peak memory of a search, measured (benchmarks/bench_memory.py, bytes per search result):
# per (query, result) 20 bytes for Hamming search, 29 for inverted storage, 36 for the
# asymmetric search (D float32, I int64, faiss's int32 distances and positions, the weighted
# distances and their order), whose shortlist adds 24 bytes for each candidate beyond k
RESULT_BYTES = 36
CANDIDATE_BYTES = 24
MAX_JSON_DEPTH = 64      # nesting of lists and dicts in a document's metadata (check_json)


def as_array(x, name: str) -> np.ndarray:
    """``np.asarray(x)``, with ragged nested lists reported as a ValueError naming ``name``."""
    try:
        return np.asarray(x)
    except ValueError as e:
        raise ValueError(f"{name} must be a rectangular array, got a ragged {type(x).__name__}"
                         f" ({e})") from None


def check_vectors(x, d: int, name: str = "x", allow_empty: bool = True) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array of shape (n, d), or raise.

    Accepts any real numeric array-like (float64, int, non-contiguous ...), like faiss.
    Raises TypeError for non-numeric data and ValueError for a wrong shape, a wrong
    dimension or values that are NaN or infinite.
    """
    if (type(x) is np.ndarray and x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == d
            and (allow_empty or x.shape[0]) and x.flags.c_contiguous):
        return _finite(x, name)   # already what is wanted: the checks below would pass
    arr = as_array(x, name)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (n, {d}), got shape {arr.shape}")
    if arr.shape[1] != d:
        raise ValueError(f"{name} must have {d} columns (the index dimension d), got {arr.shape[1]}")
    if not allow_empty and arr.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one vector, got shape {arr.shape}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    return _finite(out, name)


def _finite(x: np.ndarray, name: str) -> np.ndarray:
    """x, a float32 array, if its values are finite, or a ValueError naming it."""
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values beyond float32 range)")
    return x


def check_ids(ids, n: int | None = None, name: str = "ids") -> np.ndarray:
    """Return ``ids`` as a contiguous int64 array of shape (n,) (any length if n is None).

    An empty array may have any dtype (``np.asarray([])`` is float64).
    """
    arr = as_array(ids, name)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        length = "" if n is None else f" of length {n}"
        raise ValueError(f"{name} must be a 1-D array{length}, got shape {arr.shape}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > INT64_MAX:
        raise ValueError(f"{name} must fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_new_ids(ids, n: int, stored, name: str = "ids") -> np.ndarray:
    """Return ``ids`` as int64 (n,) if they are distinct, not -1, at most MAX_ID and not
    yet ``stored`` (an ``IdSet``: O(n log N) per run of it, no pass over all N stored ids).

    Duplicates are rejected rather than replaced: replacing is ``remove_ids`` then add.
    """
    arr = check_ids(ids, n, name)
    if (arr == MISSING_ID).any():
        raise ValueError(f"{name} must not contain {MISSING_ID}, which search returns for "
                         "missing results")
    if (arr > MAX_ID).any():
        raise ValueError(f"{name} must be <= {MAX_ID} (2**63 - 2): add() numbers new vectors "
                         "from the largest id + 1, which must fit in int64")
    values, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{name} must be distinct; got duplicates within the batch: "
                         f"{values[counts > 1][:5].tolist()}")
    clash = arr[stored.isin(arr)]
    if len(clash):
        raise ValueError(f"{name} already in the index: {clash[:5].tolist()}"
                         " (remove them first to replace them)")
    return arr


def check_codes(codes, n_bits: int, n_active: int | None = None, name: str = "codes",
                length_byte: bool = False) -> np.ndarray:
    """Return ``codes`` as C-contiguous uint8 (n, ceil(n_bits / 8) + length_byte) binary
    codes, or raise: the bits past n_bits must be 0, each code must have exactly n_active
    bits set if n_active is given, and a length byte (``_lengths.py``) exactly LENGTH_BITS
    (as ``sa_encode`` makes them)."""
    arr = as_array(codes, name)
    code_size = (n_bits + 7) // 8 + length_byte
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 array (as sa_encode returns), got dtype "
                        f"{arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != code_size:
        raise ValueError(f"{name} must have shape (n, {code_size}) (code_size bytes per code), "
                         f"got shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    if length_byte and (np.unpackbits(arr[:, -1:], axis=1).sum(axis=1) != LENGTH_BITS).any():
        raise ValueError(f"{name} must end in a length byte with exactly {LENGTH_BITS} bits "
                         "set each, as sa_encode makes them")
    bits = np.unpackbits(arr[:, :code_size - length_byte], axis=1, bitorder="little")
    if bits[:, n_bits:].any():
        raise ValueError(f"{name} has bits set past the code's {n_bits} bits")
    if n_active is not None and (bits.sum(axis=1) != n_active).any():
        raise ValueError(f"{name} must have exactly {n_active} bits set each (hash_length), as "
                         "sa_encode makes them")
    return arr


def next_ids(start: int, n: int) -> np.ndarray:
    """int64 ids start .. start + n - 1, or a ValueError if they would pass MAX_ID."""
    if start + n - 1 > MAX_ID:
        raise ValueError(f"add() numbers vectors from {start}, one past the largest id so far; "
                         f"{n} more would pass the largest id {MAX_ID} (2**63 - 2): "
                         "use add_with_ids")
    return np.arange(start, start + n, dtype=np.int64)


@functools.lru_cache(maxsize=1)
def memory_bytes() -> int | None:
    """Physical memory of this machine in bytes, or None where the OS does not say (asked
    once)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_k(k, nq: int, candidates: int | None = None) -> int:
    """Return ``k`` as int if it is >= 1 and a search of nq queries for k results each, ranking
    ``candidates`` per query (default k), fits in memory, or raise.

    Checked before anything is allocated: the search takes nq * (k * RESULT_BYTES +
    (candidates - k) * CANDIDATE_BYTES) bytes at its peak (measured, see RESULT_BYTES).
    """
    k = check_positive_int(k, "k")
    if k > INT64_MAX:
        raise ValueError(f"k must fit in int64, got {k}")
    extra = 0 if candidates is None else max(0, candidates - k)
    need, limit = nq * (k * RESULT_BYTES + extra * CANDIDATE_BYTES), memory_bytes()
    if limit is not None and need > limit:
        raise ValueError(f"k={k} is too large: searching {nq} queries would take "
                         f"{need / 2**30:.3g} GiB ({RESULT_BYTES} bytes per result"
                         f"{f' and {CANDIDATE_BYTES} per further candidate' if extra else ''}), "
                         f"more than this machine's {limit / 2**30:.3g} GiB of memory")
    return k


def check_json(value, name: str, depth: int = 0) -> None:
    """Raise TypeError/ValueError unless ``value`` comes back equal from JSON: None, str,
    bool, int, finite float, and lists and str-keyed dicts of these, nested at most
    MAX_JSON_DEPTH deep."""
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite (JSON has no NaN or infinity), got {value}")
        return
    if isinstance(value, (list, dict)) and depth >= MAX_JSON_DEPTH:
        raise ValueError(f"{name} nests lists and dicts more than {MAX_JSON_DEPTH} deep")
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_json(item, f"{name}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{name} has the key {key!r} ({type(key).__name__}): keys must "
                                "be strings (a saved store would give it back as a string)")
            check_json(item, f"{name}[{key!r}]", depth + 1)
        return
    hint = " (it would come back as a list)" if isinstance(value, tuple) else ""
    raise TypeError(f"{name} is a {type(value).__name__}{hint}: values must be str, int, "
                    "float, bool, None, lists or dicts of these, which survive saving as JSON")


def check_positive_int(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``value`` as int if it is an integer >= minimum and <= maximum (bools
    rejected), or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_real(value, name: str, low: float | None = None, high: float | None = None,
               low_inclusive: bool = True) -> float:
    """Return ``value`` as float if it is a finite real in the given range, or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (v == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def saved_n_threads(value):
    """A thread count read from a file, lowered to numba's NUMBA_NUM_THREADS here: a setting
    of the machine that saved it, not part of the file's validity (then ``check_n_threads``)."""
    if isinstance(value, int) and value > numba.config.NUMBA_NUM_THREADS:
        return numba.config.NUMBA_NUM_THREADS
    return value


def check_n_threads(value) -> int | None:
    """Return ``value`` if it is None or a thread count numba can use, or raise."""
    if value is None:
        return None
    n = check_positive_int(value, "n_threads")
    if n > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n_threads must be <= {numba.config.NUMBA_NUM_THREADS} "
                         f"(numba's NUMBA_NUM_THREADS), got {n}")
    return n
