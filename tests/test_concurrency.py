"""Threads: searches run in parallel, changes run alone, and under a bounded-time stress of
searches racing adds and removes every result is that of some order of the calls."""
import copy
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from biohash_index import BioHashIndexRefine
from biohash_index._locking import ReadWriteLock

SENTINEL = np.float32(2**31 - 1)
TIMEOUT = 10  # seconds any single wait in these tests may take before it counts as a hang


def start(target, *args):
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


# ------------------------------------------------------------------ the lock itself
def test_readers_share_the_lock():
    lock, barrier = ReadWriteLock(), threading.Barrier(3, timeout=TIMEOUT)

    def reader():
        with lock.read():
            barrier.wait()          # passes only if all three readers are inside together

    threads = [start(reader) for _ in range(3)]
    for t in threads:
        t.join(TIMEOUT)
    assert not barrier.broken and not any(t.is_alive() for t in threads)


def test_writer_waits_for_readers_and_new_readers_wait_for_writer():
    lock, log = ReadWriteLock(), []
    reading, release = threading.Event(), threading.Event()

    def first_reader():
        with lock.read():
            reading.set()
            release.wait(TIMEOUT)
            log.append("reader 1 leaves")

    def writer():
        with lock.write():
            log.append("writer")

    def second_reader():
        with lock.read():
            log.append("reader 2")

    r1 = start(first_reader)
    reading.wait(TIMEOUT)
    w = start(writer)
    deadline = time.monotonic() + TIMEOUT
    while not lock._writers_waiting and time.monotonic() < deadline:   # the writer is queued
        time.sleep(0.001)
    r2 = start(second_reader)
    time.sleep(0.05)
    assert log == []                            # writer blocked by reader 1, reader 2 by writer
    release.set()
    for t in (r1, w, r2):
        t.join(TIMEOUT)
    assert log == ["reader 1 leaves", "writer", "reader 2"]


def test_lock_is_reentrant_but_refuses_upgrade():
    lock = ReadWriteLock()
    with lock.write():
        with lock.read(), lock.write():
            pass
    with lock.read():
        with lock.read():
            pass
        with pytest.raises(RuntimeError, match="read lock"):
            with lock.write():
                pass
    with lock.write():                           # everything was released
        pass


# ------------------------------------------------------------------ the lock in the index
@pytest.fixture
def filled(trained, clustered):
    index = copy.deepcopy(trained)
    index.add(clustered[0][:200])
    return index


def test_searches_run_in_parallel(filled, clustered):
    barrier = threading.Barrier(2, timeout=TIMEOUT)
    storage_probe = filled.storage.probe

    def probe_meeting_the_other(queries, nprobe):
        barrier.wait()               # both searches must be inside storage.probe at once
        return storage_probe(queries, nprobe)

    filled.storage.probe = probe_meeting_the_other
    results = []
    threads = [start(lambda: results.append(filled.search(clustered[0][:5], 3)))
               for _ in range(2)]
    for t in threads:
        t.join(TIMEOUT)
    assert len(results) == 2 and not barrier.broken


def test_add_waits_for_a_running_search(filled, clustered):
    inside, release = threading.Event(), threading.Event()
    storage_probe = filled.storage.probe

    def slow_probe(queries, nprobe):
        inside.set()
        release.wait(TIMEOUT)
        return storage_probe(queries, nprobe)

    filled.storage.probe = slow_probe
    searcher = start(filled.search, clustered[0][:5], 3)
    inside.wait(TIMEOUT)
    adder = start(filled.add, clustered[0][200:210])
    time.sleep(0.05)
    assert filled.ntotal == 200 and adder.is_alive()
    release.set()
    for t in (searcher, adder):
        t.join(TIMEOUT)
    assert filled.ntotal == 210


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_copies_have_their_own_lock(filled, clustered, protocol):
    clone = pickle.loads(pickle.dumps(filled, protocol=protocol))
    assert isinstance(clone._lock, ReadWriteLock) and clone._lock is not filled._lock
    np.testing.assert_array_equal(clone.search(clustered[0][:5], 3)[1],
                                  filled.search(clustered[0][:5], 3)[1])
    with filled._lock.write():                   # a held lock is not copied
        twin = copy.deepcopy(filled)             # (re-entrant: a writer may read)
        adder = start(twin.add, clustered[0][:1])
        adder.join(TIMEOUT)
        assert twin.ntotal == 201 and filled.ntotal == 200


# ------------------------------------------------------------------ stress
def plan_ops(rng, n_ops, n_rows, n_base):
    """Random add / add_with_ids / remove_ids calls and the id -> row map after each.

    Returns ops [(method, rows of xb or None, ids or None)] and states, where states[j] is (ids, rows) after j ops.
    """
    rows = {i: i for i in range(n_base)}
    next_id, fresh = n_base, 2     # add_with_ids uses ids -2, -3, ...: add never reaches them
    ops, states = [], [dict(rows)]
    for _ in range(n_ops):
        r = rng.random()
        sel = rng.integers(0, n_rows, rng.integers(1, 8))
        if r < 0.3:
            ids = np.arange(next_id, next_id + len(sel))
            ops.append(("add", sel, None))
        elif r < 0.6:
            ids = -np.arange(fresh, fresh + len(sel))
            fresh += len(sel)
            ops.append(("add_with_ids", sel, ids))
        else:
            present = [i for i in rows if not 0 <= i < n_base]
            ids = rng.choice(present, min(len(present), 5), replace=False) if present else []
            ops.append(("remove_ids", None, np.append(np.asarray(ids, np.int64), 10**9)))
            for i in ids:
                del rows[i]
            ids = None
        if ids is not None:
            rows.update(zip(ids.tolist(), sel.tolist()))
            next_id = max(next_id, int(ids.max()) + 1)
        states.append(dict(rows))
    return ops, [(np.array(sorted(s)), np.array([s[i] for i in sorted(s)])) for s in states]


def matches_state(D, I, k, qbits, bits, state):
    """Is (D, I) exactly a k-NN answer over the stored (ids, rows) of ``state``?"""
    ids, rows = state
    H = (qbits[:, None, :] != bits[rows][None, :, :]).sum(axis=2)
    expected = np.full((len(qbits), k), SENTINEL)
    n = min(k, len(ids))
    expected[:, :n] = np.sort(H, axis=1)[:, :n]
    if not np.array_equal(D, expected) or not (I[:, n:] == -1).all():
        return False
    pos = np.searchsorted(ids, I[:, :n]).clip(0, len(ids) - 1)
    return ((ids[pos] == I[:, :n]).all() and
            (np.take_along_axis(H, pos, axis=1) == D[:, :n]).all() and
            all(len(set(row)) == n for row in I[:, :n]))


def stress(index, xb, seconds, n_searchers=3, n_ops=400, n_base=200, seed=0, pickles=True):
    """One writer runs planned changes while searchers search (and pickle), for at most
    ``seconds``; returns (states, number of ops done, search records, pickle records, errors)."""
    ops, states = plan_ops(np.random.default_rng(seed), n_ops, len(xb), n_base)
    index.add(xb[:n_base])
    started, completed, errors = [0], [0], []
    searches, pickled = [], []
    done = threading.Event()

    def writer():
        try:
            for method, sel, ids in ops:
                if done.is_set():
                    break
                args = {"add": (xb[sel],), "add_with_ids": (xb[sel], ids),
                        "remove_ids": (ids,)}[method]
                started[0] += 1
                getattr(index, method)(*args)
                completed[0] += 1
                time.sleep(0)
        except Exception as e:          # reported by the test
            errors.append(e)
        finally:
            done.set()

    def searcher(rng):
        try:
            while not done.is_set():
                q, k = rng.integers(0, len(xb), 4), int(rng.integers(1, 40))
                before = completed[0]
                if pickles and rng.random() < 0.05:
                    ids = pickle.loads(pickle.dumps(index)).storage.ids()
                    pickled.append((before, started[0], np.sort(ids)))
                else:
                    D, I = index.search(xb[q], k)
                    searches.append((before, started[0], q, k, D, I))
        except Exception as e:
            errors.append(e)

    threads = [start(writer)] + [start(searcher, np.random.default_rng(seed + 1 + i))
                                 for i in range(n_searchers)]
    done.wait(seconds)
    done.set()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread hangs"
    return states, completed[0], searches, pickled, errors


@pytest.mark.parametrize("storage", ["flat", "ivf"])
def test_stress_searches_racing_adds_and_removes(clustered, trained, trained_ivf, storage):
    xb = clustered[0]
    index = copy.deepcopy(trained if storage == "flat" else trained_ivf)  # IVF: exact too
    bits = np.unpackbits(index.sa_encode(xb), axis=1)
    states, n_done, searches, pickles, errors = stress(index, xb, seconds=1.5)
    assert errors == []
    assert n_done > 20 and len(searches) > 20, "too little happened to test anything"
    for before, after, q, k, D, I in searches:
        assert any(matches_state(D, I, k, bits[q], bits, states[j])
                   for j in range(before, after + 1)), "a search saw a state that never was"
    for before, after, ids in pickles:
        assert any(np.array_equal(ids, states[j][0]) for j in range(before, after + 1))
    ids, rows = states[n_done]                   # nothing lost, nothing extra, codes intact
    order = np.argsort(index.storage.ids())
    np.testing.assert_array_equal(index.storage.ids()[order], ids)
    np.testing.assert_array_equal(np.unpackbits(index.storage.codes()[order], axis=1),
                                  bits[rows])


def test_concurrent_searches_survive_numba_workqueue_layer(tmp_path):
    """Numba's fallback threading layer aborts on concurrent parallel kernels unless the
    package serialises them (run in a subprocess: an abort would kill pytest)."""
    script = textwrap.dedent("""
        import threading, numba, numpy as np
        from biohash_index import BioHashIndex
        xb = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
        index = BioHashIndex(16, 4, n_hidden=32, epochs=2)
        index.train(xb)
        index.add(xb)
        def work():
            for _ in range(100):
                index.search(xb[:50], 5)
        threads = [threading.Thread(target=work) for _ in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert numba.threading_layer() == "workqueue"
    """)
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


def test_refine_index_searches_racing_adds_and_removes(trained, clustered):
    """BioHashIndexRefine keeps two indexes: a search between the two halves of an add or a
    remove would ask for vectors the exact index does not hold."""
    xb = clustered[0]
    index = BioHashIndexRefine(copy.deepcopy(trained), k_factor=4)
    states, n_done, searches, _, errors = stress(index, xb, seconds=1.0, n_searchers=2,
                                                 pickles=False)
    assert errors == [] and n_done > 20 and len(searches) > 20
    for before, after, q, k, D, I in searches:     # ids of some state, finite distances
        assert any(set(I[I >= 0].tolist()) <= set(states[j][0].tolist())
                   for j in range(before, after + 1))
        assert np.isfinite(D[I >= 0]).all() and (D[I >= 0] < 3e38).all()
    ids, _ = states[n_done]
    assert sorted(index.base_index.storage.ids().tolist()) == ids.tolist()
    assert index.refine_index.ntotal == index.ntotal == len(ids)
