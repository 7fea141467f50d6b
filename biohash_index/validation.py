"""Input checks shared by the whole package: one place that says what was expected."""
from __future__ import annotations

import numbers

import numba
import numpy as np


def check_vectors(x, d: int, name: str = "x", allow_empty: bool = True) -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 array of shape (n, d), or raise.

    Accepts any real numeric array-like (float64, int, non-contiguous ...), like faiss.
    Raises TypeError for non-numeric data and ValueError for a wrong shape, a wrong
    dimension or values that are NaN or infinite.
    """
    arr = np.asarray(x)
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
    if out.size and not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values beyond float32 range)")
    return out


def check_ids(ids, n: int, name: str = "ids") -> np.ndarray:
    """Return ``ids`` as a contiguous int64 array of shape (n,), or raise."""
    arr = np.asarray(ids)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of length {n}, got shape {arr.shape}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as int if it is an integer >= minimum (bools rejected), or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
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


def check_n_threads(value) -> int | None:
    """Return ``value`` if it is None or a thread count numba can use, or raise."""
    if value is None:
        return None
    n = check_positive_int(value, "n_threads")
    if n > numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n_threads must be <= {numba.config.NUMBA_NUM_THREADS} "
                         f"(numba's NUMBA_NUM_THREADS), got {n}")
    return n
