"""What search means (``_search.py``): shortlists in (Hamming distance, id) order, weighted
re-ranking by (distance, id), exact merges of shortlists from disjoint parts, range search,
and the faiss order kept for IVF files of format versions 1 and 2."""
import copy
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from biohash_index import BioHashIndex, read_index
from biohash_index._index import make_storage
from biohash_index._search import (Queries, best, encode_queries, merge_shortlists, ranges,
                                   search, shortlist, shortlist_size, sort_ranges)
from biohash_index._storage import storage_from_faiss

NBITS = 16
DATA = Path(__file__).parent / "data"


def storage_with(codes, ids):
    storage = make_storage("flat", NBITS)
    storage.add(codes, ids)
    return storage


def trained_storage(kind, nbits, x, nlist=4, nprobe=None, assign=1):
    """An empty storage of ``kind``; ivf: routed by a router learned on float32 (n, d) x."""
    storage = make_storage(kind, nbits, nlist=nlist, nprobe=nprobe, assign=assign)
    storage.train(x, x.mean(axis=0), 0)
    return storage


def copy_of(storage):
    return storage_from_faiss(faiss.deserialize_index_binary(
        faiss.serialize_index_binary(storage.index)), storage.kind,
        router=storage.router if storage.routes else None)


def random_codes(rng, n, nbits=NBITS, active=3):
    """Codes with 3 of 16 bits set: few distinct distances, many ties."""
    bits = np.zeros((n, nbits), np.uint8)
    for row in bits:
        row[rng.choice(nbits, active, replace=False)] = 1
    return np.packbits(bits, axis=1, bitorder="little")


def hamming(xq, xb):
    return np.unpackbits(xq[:, None, :] ^ xb[None, :, :], axis=2).sum(axis=2)


def test_ties_are_broken_by_id_even_past_the_kth_result():
    codes = np.zeros((10, NBITS // 8), np.uint8)
    ids = np.arange(10, dtype=np.int64)[::-1].copy()  # stored in descending id order
    H, I, W = shortlist(storage_with(codes, ids), Queries(None, codes[:2]), 4)
    np.testing.assert_array_equal(I, [[0, 1, 2, 3]] * 2)
    np.testing.assert_array_equal(H, 0)
    assert W is None


@pytest.mark.parametrize("kind,assign", [("flat", 1), ("inverted", 1), ("ivf", 1), ("ivf", 2)])
def test_shortlist_is_the_brute_force_order(kind, assign):
    """Every storage gives the K smallest (distance, id) pairs, negative ids included
    (IVF with every list probed, each id once)."""
    rng = np.random.default_rng(7)
    codes, xq = random_codes(rng, 500, 64, 8), random_codes(rng, 20, 64, 8)
    x, xfq = rng.standard_normal((500, 8), np.float32), rng.standard_normal((20, 8), np.float32)
    ids = rng.choice(np.arange(-10**6, 10**6), 500, replace=False)
    storage = trained_storage(kind, 64, x, nprobe=4, assign=assign)   # every list probed
    storage.add(codes, ids, x)
    H, I, _ = shortlist(storage, Queries(xfq, xq), 37)
    D = hamming(xq, codes)
    order = np.lexsort((np.broadcast_to(ids, D.shape), D), axis=1)[:, :37]
    np.testing.assert_array_equal(H, np.take_along_axis(D, order, 1))
    np.testing.assert_array_equal(I, ids[order])


@pytest.mark.parametrize("code_size", [1, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 68, 72])
def test_flat_shortlist_is_the_brute_force_order_at_every_code_size(code_size):
    """Whole 8-byte words (scanned by a loop compiled per word count), 4-byte remainders and
    other sizes (the general loop) give the same K smallest (distance, id) pairs."""
    rng = np.random.default_rng(code_size)
    nbits = 8 * code_size
    codes = random_codes(rng, 400, nbits, nbits // 4)
    xq = random_codes(rng, 10, nbits, nbits // 4)
    ids = rng.choice(np.arange(10**6), 400, replace=False)
    storage = make_storage("flat", nbits)
    storage.add(codes, ids)
    H, I, _ = shortlist(storage, Queries(np.zeros((10, 1), np.float32), xq), 25)
    D = hamming(xq, codes)
    order = np.lexsort((np.broadcast_to(ids, D.shape), D), axis=1)[:, :25]
    np.testing.assert_array_equal(H, np.take_along_axis(D, order, 1))
    np.testing.assert_array_equal(I, ids[order])


def test_missing_results_come_last():
    rng = np.random.default_rng(0)
    codes = random_codes(rng, 3)
    H, I, _ = shortlist(storage_with(codes, np.array([7, -5, 9])), Queries(None, codes), 5)
    D, I = best(H, I, None, 5)
    assert (I[:, 3:] == -1).all() and (D[:, 3:] == 2**31 - 1).all()
    assert sorted(I[0, :3]) == [-5, 7, 9]


def test_weighted_order_breaks_ties_by_id_and_keeps_missing_last():
    H = np.array([[0, 2, 2, 4, np.iinfo(np.int32).max]], np.int32)
    I = np.array([[9, 4, 3, 1, -1]], np.int64)
    W = np.array([[1.5, 0.5, 1.5, 0.5, np.inf]], np.float32)
    D, Ib = best(H, I, W, 5)
    np.testing.assert_array_equal(Ib, [[1, 4, 3, 9, -1]])
    np.testing.assert_array_equal(D[0, :4], [0.5, 0.5, 1.5, 1.5])
    assert D[0, 4] == np.float32(2**31 - 1)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merged_shortlists_equal_one_storage(kind, seed):
    rng = np.random.default_rng(seed)
    codes = random_codes(rng, 400)
    x = rng.standard_normal((400, 8), np.float32)
    ids = rng.permutation(10_000)[:400].astype(np.int64)
    xq = Queries(rng.standard_normal((30, 8), np.float32), random_codes(rng, 30))
    template = trained_storage(kind, NBITS, x, nprobe=2, assign=seed % 2 + 1)
    whole = copy_of(template)  # trained and empty: every shard has the same IVF lists
    whole.add(codes, ids, x)
    shard_of = rng.integers(0, 3, len(codes))
    parts = []
    for s in range(3):
        shard = copy_of(template)
        shard.add(codes[shard_of == s], ids[shard_of == s], x[shard_of == s])
        parts.append(shortlist(shard, xq, 25))
    for a, b in zip(merge_shortlists(parts, 25)[:2], shortlist(whole, xq, 25)[:2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("scoring", ["asymmetric", "hamming"])
def test_search_of_parts_merges_into_the_search_of_the_whole(clustered, scoring):
    """Shards (disjoint parts, each its own storage) answer exactly as one index."""
    xb = clustered[0]
    index = BioHashIndex(32, 8, n_hidden=64, scoring=scoring, epochs=1)
    index.train(xb)
    ids = np.random.default_rng(3).permutation(len(xb)).astype(np.int64)
    whole = copy.deepcopy(index)
    whole.add_with_ids(xb, ids)
    xq = xb[:40] + 0.1
    queries = encode_queries(index.model, xq)
    for k in (1, 10, 100):
        K = shortlist_size(k, len(xb)) if scoring == "asymmetric" else k
        parts = []
        for s in range(3):
            shard = copy.deepcopy(index)
            shard.add_with_ids(xb[s::3], ids[s::3])
            parts.append(shortlist(shard.storage, queries, K))
        D, I = best(*merge_shortlists(parts, K), k)
        Dw, Iw = whole.search(xq, k)
        np.testing.assert_array_equal(I, Iw)
        np.testing.assert_array_equal(D, Dw)


def test_weighted_distances_follow_the_definition(clustered):
    """D of asymmetric search: sum_j |c_j| [bit j disagrees with sign c_j] / mean |c_j|."""
    xb = clustered[0]
    index = BioHashIndex(32, 8, n_hidden=64, epochs=0)
    index.add(xb)
    xq = xb[:5] * 1.01
    D, I = index.search(xq, 10)
    acts, bias = index.model.inputs(xq)
    acts = acts if bias is None else acts - bias
    bits = np.unpackbits(index.storage.codes(), axis=1, bitorder="little")[:, :64]
    for q in range(5):
        a = np.sort(acts[q])[::-1]
        c = acts[q] - (a[7] + a[8]) / 2
        for d, i in zip(D[q], I[q]):
            b = bits[i]     # add() gave ids equal to storage positions
            want = np.abs(c)[(c > 0) != (b == 1)].sum() / np.abs(c).mean()
            assert d == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("kind,assign", [("flat", 1), ("inverted", 1), ("ivf", 1), ("ivf", 2)])
def test_range_search_is_every_code_within_the_radius_by_distance_then_id(kind, assign):
    rng = np.random.default_rng(4)
    codes, xq = random_codes(rng, 300, 64, 8), random_codes(rng, 10, 64, 8)
    x, xfq = rng.standard_normal((300, 8), np.float32), rng.standard_normal((10, 8), np.float32)
    ids = rng.permutation(10**5)[:300].astype(np.int64)
    storage = trained_storage(kind, 64, x, nprobe=4, assign=assign)
    storage.add(codes, ids, x)
    lims, H, I = ranges(storage, Queries(xfq, xq), 12)
    D = hamming(xq, codes)
    for q in range(10):
        inside = np.flatnonzero(D[q] < 12)
        order = np.lexsort((ids[inside], D[q, inside]))
        np.testing.assert_array_equal(I[lims[q]:lims[q + 1]], ids[inside][order])
        np.testing.assert_array_equal(H[lims[q]:lims[q + 1]], D[q, inside][order])


@pytest.mark.parametrize("code_size", [4, 8, 16, 20, 32, 40, 64])
def test_flat_range_search_is_every_code_within_the_radius_at_every_code_size(code_size):
    """The range scan steps several codes at a time (whole 8-byte words) or one by one
    (other sizes): every code under the radius is found, lists of any length."""
    rng = np.random.default_rng(code_size)
    nbits = 8 * code_size
    codes, xq = random_codes(rng, 403, nbits, nbits // 4), random_codes(rng, 6, nbits, nbits // 4)
    ids = rng.permutation(10**5)[:403].astype(np.int64)
    storage = make_storage("flat", nbits)
    storage.add(codes, ids)
    D = hamming(xq, codes)
    radius = int(np.quantile(D, 0.05)) + 1
    lims, H, I = ranges(storage, Queries(np.zeros((6, 1), np.float32), xq), radius)
    for q in range(6):
        inside = np.flatnonzero(D[q] < radius)
        order = np.lexsort((ids[inside], D[q, inside]))
        np.testing.assert_array_equal(I[lims[q]:lims[q + 1]], ids[inside][order])
        np.testing.assert_array_equal(H[lims[q]:lims[q + 1]], D[q, inside][order])


def test_sort_ranges_merges_parts_and_drops_repeats():
    a = (np.array([0, 2, 3]), np.array([4, 2, 6], np.int32), np.array([8, 5, 1]))
    b = (np.array([0, 1, 3]), np.array([2, 6, 0], np.int32), np.array([5, 1, 7]))
    lims, D, I = sort_ranges([a, b])
    np.testing.assert_array_equal(lims, [0, 2, 4])
    np.testing.assert_array_equal(I, [5, 8, 7, 1])
    np.testing.assert_array_equal(D, [2, 4, 0, 6])


def test_ivf_files_of_version_1_keep_faiss_order_and_refuse_selectors(tmp_path):
    """IVF files saved before the (distance, id) order search with faiss's IndexBinaryIVF
    (bit for bit as before, tests/test_neighbors.py); saved again, they keep it."""
    index = read_index(shutil.copytree(DATA / "v1-ivf.index", tmp_path / "old.index"))
    expected = np.load(DATA / "v1-ivf.expected.npz")
    assert index.storage.faiss_order
    with pytest.raises(ValueError, match="cannot filter"):
        index.search(expected["xq"], 6, params={"sel": faiss.IDSelectorRange(0, 10)})
    index.save(tmp_path / "again.index")
    again = read_index(tmp_path / "again.index")
    assert again.storage.faiss_order
    np.testing.assert_array_equal(again.search(expected["xq"], 6)[1], expected["I"])
    fresh = BioHashIndex.from_params(index.params, storage="ivf", nlist=index.storage.nlist)
    fresh.train(np.random.default_rng(0).standard_normal((500, index.d)).astype(np.float32))
    assert not fresh.storage.faiss_order   # new IVF indexes: the (distance, id) order
    fresh.save(tmp_path / "fresh.index")
    assert not read_index(tmp_path / "fresh.index").storage.faiss_order


def test_search_module_is_what_the_index_calls(clustered):
    xb = clustered[0]
    index = BioHashIndex(32, 8, n_hidden=64, epochs=0)
    index.add(xb)
    for a, b in zip(index.search(xb[:9], 7), search(index.model, index.storage, xb[:9], 7)):
        np.testing.assert_array_equal(a, b)


def test_shortlist_option_sets_the_hamming_candidates_reranked(clustered):
    """params={"shortlist": K}: the k best by weighted distance among the K nearest by
    (Hamming distance, id); at least k; K >= ntotal re-ranks every code."""
    xb = clustered[0]
    index = BioHashIndex(32, 8, n_hidden=64, epochs=0)
    index.add(xb)
    xq = xb[:20] * 1.01
    queries = encode_queries(index.model, xq)
    for K in (10, 30, 200):
        D, I = index.search(xq, 10, params={"shortlist": K})
        Dw, Iw = best(*shortlist(index.storage, queries, K), 10)
        np.testing.assert_array_equal(I, Iw)
        np.testing.assert_array_equal(D, Dw)
    for got, default in zip(index.search(xq, 10, params={"shortlist": 80}), index.search(xq, 10)):
        np.testing.assert_array_equal(got, default)     # the default: 8 k, at least 64
    for got, at_k in zip(index.search(xq, 10, params={"shortlist": 3}),
                         index.search(xq, 10, params={"shortlist": 10})):
        np.testing.assert_array_equal(got, at_k)        # never fewer than k
    D, I = index.search(xq, 10, params={"shortlist": 10**9})
    acts, bias = index.model.inputs(xq)
    acts = acts if bias is None else acts - bias
    bits = np.unpackbits(index.storage.codes(), axis=1, bitorder="little")[:, :64]
    for q in range(len(xq)):
        a = np.sort(acts[q])[::-1]
        c = acts[q] - (a[7] + a[8]) / 2
        every = (np.abs(c) * ((c > 0) != (bits == 1))).sum(axis=1) / np.abs(c).mean()
        np.testing.assert_allclose(D[q], np.sort(every)[:10], rtol=1e-5)
    with pytest.raises(ValueError, match="shortlist"):
        index.search(xq, 10, params={"shortlist": 0})
    with pytest.raises(TypeError, match="shortlist"):
        index.search(xq, 10, params={"shortlist": "80"})
