"""Code storages: inverted lists give exactly the flat Hamming ranking; threads knob."""
import copy
import json
import pickle
import subprocess
import sys
import textwrap
import threading

import faiss
import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from biohash_index import BioHashIndex
from biohash_index._search import Queries, ranges, shortlist
from biohash_index._router import Router
from biohash_index._storage import FlatCodeStorage, InvertedCodeStorage, RoutedCodeStorage
from biohash_index._threads import blas_limit, thread_limit


def sparse_codes(rng, n, m, active):
    """uint8 (n, ceil(m / 8)) codes with exactly ``active`` of the first m bits set."""
    bits = np.zeros((n, 8 * ((m + 7) // 8)), np.uint8)
    np.put_along_axis(bits, np.argsort(rng.random((n, m)), axis=1)[:, :active], 1, axis=1)
    return np.packbits(bits, axis=1, bitorder="little")


def lexicographic_knn(xq, xb, ids, k):
    """Reference: all Hamming distances, sorted by (distance, id); (D, positions)."""
    H = np.unpackbits(xq[:, None, :] ^ xb[None, :, :], axis=2).sum(axis=2)
    order = np.lexsort((np.broadcast_to(ids, H.shape), H), axis=1)[:, :k]
    return np.take_along_axis(H, order, axis=1), order


def knn(storage, xq, k):
    """Hamming search of a storage for uint8 query codes: (H int32, I int64), (nq, k)."""
    return shortlist(storage, Queries(None, xq), k)[:2]


def range_knn(storage, xq, radius):
    return ranges(storage, Queries(None, xq), radius)


@pytest.mark.parametrize("n,m,active,k", [(3000, 40, 3, 10), (500, 64, 4, 700),
                                          (4000, 320, 16, 25)])
def test_inverted_equals_flat_including_ties(n, m, active, k):
    rng = np.random.default_rng(n)
    xb, xq = sparse_codes(rng, n, m, active), sparse_codes(rng, 60, m, active)
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    flat, inv = FlatCodeStorage(8 * xb.shape[1]), InvertedCodeStorage(8 * xb.shape[1])
    for s in (flat, inv):
        s.add(xb[: n // 2], ids[: n // 2])
        s.add(xb[n // 2:], ids[n // 2:])
    Df, If = knn(flat, xq, k)
    Di, Ii = knn(inv, xq, k)
    np.testing.assert_array_equal(Di, Df)
    np.testing.assert_array_equal(Ii, If)
    D, order = lexicographic_knn(xq, xb, ids, k)   # the tie order both follow
    np.testing.assert_array_equal(If[:, :n], ids[order])
    np.testing.assert_array_equal(Df[:, :n], D)
    if k > n:
        assert (Ii[:, n:] == -1).all() and (Di[:, n:] == np.iinfo(np.int32).max).all()


def test_inverted_follows_adds_and_removals_and_any_popcount():
    rng = np.random.default_rng(5)
    xb = rng.integers(0, 256, (2000, 8), dtype=np.uint8) & rng.integers(0, 256, (2000, 8),
                                                                       dtype=np.uint8)
    xb[:7] = 0                                   # codes that share no bit with any query
    xq = rng.integers(0, 256, (40, 8), dtype=np.uint8)
    flat, inv = FlatCodeStorage(64), InvertedCodeStorage(64)
    for s in (flat, inv):
        s.add(xb[:1000], np.arange(1000))
    knn(inv, xq, 5)                              # builds the lists, which must then go stale
    for s in (flat, inv):
        s.add(xb[1000:], np.arange(1000, 2000))
        assert s.remove_ids(np.arange(0, 2000, 3)) == 667
    for k in (1, 30, 1400):
        for a, b in zip(knn(inv, xq, k), knn(flat, xq, k)):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(range_knn(inv, xq, 20), range_knn(flat, xq, 20)):
        np.testing.assert_array_equal(a, b)
    inv.reset()
    D, I = knn(inv, xq, 3)
    assert (I == -1).all() and inv.ntotal == 0


def test_posting_lists_take_the_documented_memory():
    """4 bytes per set bit and 20 per code (+ 8 per bit for the list starts): the ids stay in
    faiss's IndexBinaryIDMap alone, and searches map positions to ids through it."""
    rng = np.random.default_rng(3)
    xb, xq = sparse_codes(rng, 1000, 64, 4), sparse_codes(rng, 20, 64, 4)
    ids = rng.permutation(10**6)[:1000].astype(np.int64)
    flat, inv = FlatCodeStorage(64), InvertedCodeStorage(64)
    for s in (flat, inv):
        s.add(xb, ids)
        s.remove_ids(ids[::7])
    for a, b in zip(knn(inv, xq, 50), knn(flat, xq, 50)):
        np.testing.assert_array_equal(a, b)
    n = inv.ntotal
    assert sum(a.nbytes for a in inv.posting_lists()) == 4 * 4 * n + 20 * n + 8 * 65


@pytest.mark.parametrize("nlist,assign", [(1, 1), (4, 1), (4, 2), (64, 1), (64, 2)])
def test_ivf_ids_and_codes_are_the_stored_pairs(nlist, assign):
    """ids() and codes() of IVF storage read every inverted list, empty ones included,
    each vector once however many lists hold it; removal removes every copy."""
    rng = np.random.default_rng(nlist)
    xb = rng.integers(0, 256, (300, 8), dtype=np.uint8)
    x = rng.standard_normal((300, 16), np.float32)
    ids = rng.permutation(10**6)[:300].astype(np.int64)
    ivf = RoutedCodeStorage(64, Router(nlist=nlist, assign=assign))
    assert ivf.ids().shape == (0,) and ivf.codes().shape == (0, 8)
    ivf.train(x, x.mean(axis=0), 0)
    ivf.add(xb[:200], ids[:200], x[:200])
    held = sum(ivf.index.invlists.list_size(lst) for lst in range(nlist))
    assert ivf.ntotal == 200 and held == 200 * min(assign, nlist)
    assert ivf.remove_ids(np.r_[ids[:200:3], ids[:200:3], 5]) == 67
    assert ivf.ntotal == 133
    assert sum(ivf.index.invlists.list_size(lst) for lst in range(nlist)) == 133 * min(assign, nlist)
    got_ids, got_codes = ivf.ids(), ivf.codes()
    assert got_ids.dtype == np.int64 and got_codes.shape == (133, 8)
    order, kept = np.argsort(got_ids), np.setdiff1d(np.arange(200), np.arange(0, 200, 3))
    want = kept[np.argsort(ids[kept])]
    np.testing.assert_array_equal(got_ids[order], ids[want])
    np.testing.assert_array_equal(got_codes[order], xb[want])


def test_index_inverted_storage_equals_flat_and_survives_pickle(trained, clustered):
    xb = clustered[0]
    flat = copy.deepcopy(trained)
    inv = BioHashIndex(32, 4, n_hidden=64, epochs=5, task="labels", storage="inverted")
    inv.train(xb)
    np.testing.assert_array_equal(inv.model.weights_, flat.model.weights_)
    for index in (flat, inv):
        index.add_with_ids(xb, np.arange(600)[::-1] * 2)
        index.remove_ids(np.arange(0, 40, 2))
    Df, If = flat.search(xb[:50] + 0.3, 40)
    Di, Ii = inv.search(xb[:50] + 0.3, 40)
    np.testing.assert_array_equal(Di, Df)
    np.testing.assert_array_equal(Ii, If)
    clone = pickle.loads(pickle.dumps(inv))
    assert clone.storage.kind == "inverted"
    np.testing.assert_array_equal(clone.search(xb[:50] + 0.3, 40)[1], Ii)


def blas_threads(process_wide_only=False):
    """Thread counts of the BLAS libraries; process_wide_only: only those whose setting is one
    for the process (an OpenMP build keeps one per thread)."""
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"
            and not (process_wide_only and lib.get("threading_layer") == "openmp")]


def test_n_threads_limits_blas_inside_and_restores_it():
    before = blas_threads()
    assert before
    with thread_limit(1):
        assert blas_threads() == [1] * len(before)
        assert numba.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
    assert blas_threads() == before


def test_a_blas_library_loaded_after_the_first_limit_is_limited_and_restored_too():
    """In a fresh process: a limit, then a module that brings its own BLAS (scipy's), then
    ``thread_limit(1)``: every library is on one thread inside and as it was after."""
    code = textwrap.dedent("""
        import json
        from threadpoolctl import threadpool_info
        from biohash_index._threads import blas_limit, thread_limit

        def counts():
            return [lib["num_threads"] for lib in threadpool_info()
                    if lib["user_api"] == "blas" and lib.get("threading_layer") != "openmp"]
        with blas_limit(1):
            pass
        first = len(counts())
        import scipy.linalg
        before = counts()
        with thread_limit(1):
            inside = counts()
        print(json.dumps([first, before, inside, counts()]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    first, before, inside, after = json.loads(out.stdout)
    if len(before) == first:
        pytest.skip("scipy brought no BLAS library of its own here")
    assert inside == [1] * len(before) and after == before


def test_blas_limit_holds_until_the_last_overlapping_caller_leaves():
    before = blas_threads(process_wide_only=True)
    inside, release = threading.Event(), threading.Event()

    def hold():
        with blas_limit(1):
            inside.set()
            release.wait(10)

    other = threading.Thread(target=hold)
    other.start()
    assert inside.wait(10)
    with blas_limit(1):
        assert blas_threads(process_wide_only=True) == [1] * len(before)
    # the other thread is still inside
    assert blas_threads(process_wide_only=True) == [1] * len(before)
    release.set()
    other.join()
    assert blas_threads(process_wide_only=True) == before


def test_n_threads_knob_gives_same_results_and_restores_settings(trained, clustered):
    xb = clustered[0]
    before = numba.get_num_threads(), faiss.omp_get_max_threads(), blas_threads()
    results = []
    for n_threads in (None, 1, numba.config.NUMBA_NUM_THREADS):
        index = BioHashIndex(32, 4, n_hidden=64, epochs=3, storage="inverted",
                             n_threads=n_threads)
        index.train(xb)
        index.add(xb)
        results.append((index.sa_encode(xb), *index.search(xb[:100], 10)))
        assert (numba.get_num_threads(), faiss.omp_get_max_threads(), blas_threads()) == before
    for r in results[1:]:
        for a, b in zip(r, results[0]):
            np.testing.assert_array_equal(a, b)
    assert pickle.loads(pickle.dumps(index)).n_threads == numba.config.NUMBA_NUM_THREADS
    with pytest.raises(ValueError, match="n_threads"):
        BioHashIndex(32, 4, n_threads=0)
    with pytest.raises(ValueError, match="n_threads"):
        BioHashIndex(32, 4, n_threads=numba.config.NUMBA_NUM_THREADS + 1)
    with pytest.raises(TypeError, match="n_threads"):
        BioHashIndex(32, 4, n_threads=1.5)


@pytest.mark.parametrize("code_size,padded", [(3, 4), (5, 8), (17, 20), (24, 32), (40, 40),
                                              (48, 64), (64, 64), (80, 80)])
def test_codes_are_padded_to_fast_faiss_sizes_without_changing_results(code_size, padded):
    from biohash_index._storage import padded_code_size
    assert padded_code_size(code_size) == padded
    rng = np.random.default_rng(code_size)
    m = 8 * code_size
    xb, xq = sparse_codes(rng, 800, m, 3), sparse_codes(rng, 20, m, 3)
    bare = faiss.IndexBinaryFlat(m)
    bare.add(xb)
    for storage in (FlatCodeStorage(8 * padded), InvertedCodeStorage(8 * padded)):
        storage.add(xb, np.arange(800))
        assert storage.codes().shape == (800, padded)
        for a, b in zip(knn(storage, xq, 15), bare.search(xq, 15)):
            np.testing.assert_array_equal(a, b)   # ids = positions: faiss's order


def test_index_pads_storage_but_not_sa_encode(clustered):
    index = BioHashIndex(32, 4, n_hidden=400, epochs=1)
    index.train(clustered[0])
    index.add(clustered[0])
    assert index.code_size == 50 and index.sa_encode(clustered[0][:3]).shape == (3, 50)
    assert index.storage.code_size == 64
    D, _ = index.search(clustered[0][:5], 3)
    assert (D[:, 0] == 0).all()
