"""The ``n_threads`` knob: one number for numba's, faiss's and BLAS's thread pools."""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager

import faiss
import numba
from threadpoolctl import ThreadpoolController


@functools.lru_cache(maxsize=None)
def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded by now (numpy's, faiss's), found once."""
    return ThreadpoolController().select(user_api="blas")


@contextmanager
def thread_limit(n_threads: int | None):
    """Run numba kernels, faiss searches and numpy's BLAS products in the block on
    ``n_threads`` threads, then restore the previous settings; None leaves them as they are
    (numba's ``set_num_threads``, faiss's ``omp_set_num_threads``, threadpoolctl, or the
    environment).

    numba's setting is per calling thread; faiss's and BLAS's settings are process-wide.
    """
    if n_threads is None:
        yield
        return
    old_numba, old_faiss = numba.get_num_threads(), faiss.omp_get_max_threads()
    numba.set_num_threads(n_threads)
    faiss.omp_set_num_threads(n_threads)
    try:
        with _blas().limit(limits=n_threads):
            yield
    finally:
        numba.set_num_threads(old_numba)
        faiss.omp_set_num_threads(old_faiss)


_one_blas_thread = threading.Lock()
_one_blas_users = 0
_one_blas_limiter = None


@contextmanager
def one_blas_thread():
    """BLAS on one thread while any thread is inside this block (for callers that run
    products on threads of their own); the first in sets it, the last out restores it."""
    global _one_blas_users, _one_blas_limiter
    with _one_blas_thread:
        if _one_blas_users == 0:
            _one_blas_limiter = _blas().limit(limits=1)
        _one_blas_users += 1
    try:
        yield
    finally:
        with _one_blas_thread:
            _one_blas_users -= 1
            if _one_blas_users == 0:
                _one_blas_limiter.restore_original_limits()


def uses_threads(method):
    """Decorate a method of an object with an ``n_threads`` attribute to run in its limit."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with thread_limit(self.n_threads):
            return method(self, *args, **kwargs)
    return wrapper
