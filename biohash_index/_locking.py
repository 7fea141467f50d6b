"""A readers-writer lock, so that searches run in parallel and changes run alone.

faiss releases the GIL while it searches, so several threads searching one index use several
cores. Adding, removing and training change the faiss index and the model in place, so
they must wait until no search runs, and searches must wait for them. ``BioHashIndex``
marks its methods with ``@reads`` or ``@writes``, and ``_lock = LockPerInstance()`` gives
each index its own lock.

The lock prefers writers (a waiting writer lets no new reader in, so a stream of searches
cannot starve an ``add``). A thread may take the lock again while it holds it (a writer
may read or write, a reader may read); a reader asking to write raises ``RuntimeError``
instead of deadlocking.
"""
from __future__ import annotations

import functools
import threading
from contextlib import contextmanager


class ReadWriteLock:
    """Many readers at once, or one writer alone; re-entrant per thread."""

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self._readers: dict[int, int] = {}   # thread id -> read depth
        self._writer: int | None = None      # thread id of the writer
        self._write_depth = 0
        self._writers_waiting = 0

    @contextmanager
    def read(self):
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    def acquire_read(self) -> None:
        """Take the lock to read (``read`` without a context manager, for hot paths)."""
        me = threading.get_ident()
        with self._cond:
            if self._writer != me and me not in self._readers:
                while self._writer is not None or self._writers_waiting:
                    self._cond.wait()
            self._readers[me] = self._readers.get(me, 0) + 1

    def release_read(self) -> None:
        me = threading.get_ident()
        with self._cond:
            self._readers[me] -= 1
            if not self._readers[me]:
                del self._readers[me]
                self._cond.notify_all()

    @contextmanager
    def write(self):
        me = threading.get_ident()
        with self._cond:
            if self._writer != me:
                if me in self._readers:
                    raise RuntimeError("a thread holding the read lock cannot take the write "
                                       "lock (it would wait for itself)")
                self._writers_waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cond.wait()
                finally:
                    self._writers_waiting -= 1
                self._writer = me
            self._write_depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._write_depth -= 1
                if not self._write_depth:
                    self._writer = None
                    self._cond.notify_all()


class LockPerInstance:
    """Class attribute that gives each instance its own ``ReadWriteLock`` on first use.

    Made lazily, so that every instance has one however it was made (constructed,
    unpickled with any protocol, copied, loaded); it then sits in the instance ``__dict__``
    under the same name, so pickled state must leave it out.
    """

    _making = threading.Lock()

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        with self._making:   # only until made: the instance's own attribute then wins
            return obj.__dict__.setdefault(self.name, ReadWriteLock())


def reads(method):
    """Run ``method`` under ``self._lock.read()``: concurrently with other readers."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        lock = self._lock
        lock.acquire_read()
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release_read()
    return locked


def writes(method):
    """Run ``method`` under ``self._lock.write()``: alone."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock.write():
            return method(self, *args, **kwargs)
    return locked
