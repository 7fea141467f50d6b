"""The ``n_threads`` knob: one number for numba's and faiss's thread pools."""
from __future__ import annotations

import functools
from contextlib import contextmanager

import faiss
import numba


@contextmanager
def thread_limit(n_threads: int | None):
    """Run numba kernels and faiss searches in the block on ``n_threads`` threads, then
    restore the previous settings; None leaves them as they are (numba's
    ``set_num_threads``, faiss's ``omp_set_num_threads``, or the environment).

    numba's setting is per calling thread; faiss's OpenMP setting is process-wide.
    numpy's BLAS (used for the projections) keeps its own pool (``OPENBLAS_NUM_THREADS``).
    """
    if n_threads is None:
        yield
        return
    old_numba, old_faiss = numba.get_num_threads(), faiss.omp_get_max_threads()
    numba.set_num_threads(n_threads)
    faiss.omp_set_num_threads(n_threads)
    try:
        yield
    finally:
        numba.set_num_threads(old_numba)
        faiss.omp_set_num_threads(old_faiss)


def uses_threads(method):
    """Decorate a method of an object with an ``n_threads`` attribute to run in its limit."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with thread_limit(self.n_threads):
            return method(self, *args, **kwargs)
    return wrapper
