"""Thread policy: the ``n_threads`` knob (one number for numba's, faiss's and BLAS's thread
pools) and ``numba_parallel``, the guard around numba's parallel kernels.

Numba's "workqueue" threading layer (its fallback where neither OpenMP nor TBB loads)
aborts the process when a ``parallel=True`` kernel is entered from two threads at once;
``numba_parallel()`` runs such kernels one at a time in that case.
"""
from __future__ import annotations

import functools
import sys
import threading
from contextlib import contextmanager

import faiss
import numba
from threadpoolctl import ThreadpoolController


_controller: tuple[int, ThreadpoolController] | None = None   # (len(sys.modules), BLAS)


def _blas() -> ThreadpoolController:
    """The BLAS libraries loaded by now (numpy's, faiss's, and any a module imported since
    brought: looked up again whenever modules were imported since the last look, which
    costs about a millisecond)."""
    global _controller
    n = len(sys.modules)
    if _controller is None or _controller[0] != n:
        _controller = n, ThreadpoolController().select(user_api="blas")
    return _controller[1]


@contextmanager
def thread_limit(n_threads: int | None):
    """Run numba kernels, faiss searches and numpy's BLAS products in the block on
    ``n_threads`` threads, then restore the previous settings; None leaves them as they are
    (numba's ``set_num_threads``, faiss's ``omp_set_num_threads``, threadpoolctl, or the
    environment).

    numba's and faiss's (OpenMP's) settings are per calling thread; BLAS's is shared by the
    process (see ``blas_limit``).
    """
    if n_threads is None:
        yield
        return
    old_numba, old_faiss = numba.get_num_threads(), faiss.omp_get_max_threads()
    numba.set_num_threads(n_threads)
    faiss.omp_set_num_threads(n_threads)
    try:
        with blas_limit(n_threads):
            yield
    finally:
        numba.set_num_threads(old_numba)
        faiss.omp_set_num_threads(old_faiss)


_workqueue_lock = threading.Lock()


@contextmanager
def numba_parallel():
    """Context for calling a numba ``parallel=True`` kernel from any thread: a no-op under the
    thread-safe layers (omp, tbb), one call at a time under "workqueue" or before numba has
    chosen its layer (the first parallel call chooses it)."""
    try:
        threadsafe = numba.threading_layer() != "workqueue"
    except ValueError:                     # no parallel kernel has run yet
        threadsafe = False
    if threadsafe:
        yield
    else:
        with _workqueue_lock:
            yield


_blas_lock = threading.Lock()
_blas_limits: list[int] = []   # the limit of every caller inside _shared_blas_limit
_blas_saved: dict = {}         # library path -> (library, its setting before it was limited)


@contextmanager
def blas_limit(n_threads: int):
    """BLAS on at most ``n_threads`` threads in the block.

    An OpenMP build of BLAS keeps one setting per thread: it is set and restored in the
    calling thread. Other builds keep one for the whole process, which overlapping callers
    (threads) share: the first in saves it, the smallest limit of the callers inside
    applies, and the last out restores it.
    """
    libs = _blas().lib_controllers
    own = [lib for lib in libs if _per_thread(lib)]
    old = [lib.num_threads for lib in own]
    with _shared_blas_limit([lib for lib in libs if not _per_thread(lib)], n_threads):
        for lib in own:
            lib.set_num_threads(n_threads)
        try:
            yield
        finally:
            for lib, n in zip(own, old):
                lib.set_num_threads(n)


@contextmanager
def _shared_blas_limit(libs, n_threads: int):
    """Limit the process-wide ``libs``: each library's setting is saved when a caller first
    limits it (a library loaded while others are inside is saved when one limits it), the
    smallest limit inside applies, and the last caller out restores every saved setting."""
    with _blas_lock:
        for lib in libs:
            _blas_saved.setdefault(lib.filepath, (lib, lib.num_threads))
        _blas_limits.append(n_threads)
        _set_shared(libs, [min(_blas_limits)] * len(libs))
    try:
        yield
    finally:
        with _blas_lock:
            _blas_limits.remove(n_threads)
            if _blas_limits:
                _set_shared(libs, [min(_blas_limits)] * len(libs))
            else:
                saved = list(_blas_saved.values())
                _blas_saved.clear()
                _set_shared([lib for lib, _ in saved], [n for _, n in saved])


def _per_thread(lib) -> bool:
    return getattr(lib, "threading_layer", None) == "openmp"


def _set_shared(libs, counts: list[int]) -> None:
    """Set process-wide BLAS thread counts from this thread. threadpoolctl >= 3.8 lets one
    "controlling" thread at a time set OpenBLAS and ignores the others: these changes are
    serialized by _blas_lock, so this thread takes control for the change and gives it up."""
    for lib, n in zip(libs, counts):
        release = getattr(type(lib), "clear_controlling_thread", None)
        if release is not None:
            release(force=True)
        lib.set_num_threads(n)
        if release is not None:
            release()


SMALL_CALL_ROWS = 8  # calls on fewer rows run on the calling thread: no limit to set


def uses_threads(method):
    """Decorate a method of an object with an ``n_threads`` attribute, whose first argument
    is rows of data, to run in its limit; a call on fewer than SMALL_CALL_ROWS rows runs as
    it is, on the calling thread (its kernels do), without the cost of changing limits."""
    @functools.wraps(method)
    def wrapper(self, x, *args, **kwargs):
        if self.n_threads is None or _rows(x) < SMALL_CALL_ROWS:
            return method(self, x, *args, **kwargs)
        with thread_limit(self.n_threads):
            return method(self, x, *args, **kwargs)
    return wrapper


def _rows(x) -> int:
    """The number of rows of x, an array-like (a source without a length: many)."""
    try:
        return len(x)
    except TypeError:
        return SMALL_CALL_ROWS
