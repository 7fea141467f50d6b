"""BioHashIndexRefine: exact re-ranking of Hamming candidates, like faiss IndexRefineFlat."""
import copy

import faiss
import numpy as np
import pytest

from biohash_index import BioHashIndex, BioHashIndexRefine
from biohash_index.evaluation import recall_at_k
from biohash_index._refine import FLT_MAX


@pytest.fixture
def base(trained):
    return copy.deepcopy(trained)


def test_search_reranks_base_candidates_exactly(base, clustered):
    xb = clustered[0]
    xq = xb[:30] + 0.3
    plain = copy.deepcopy(base)
    plain.add(xb)
    _, Ic = plain.search(xq, 40)                       # the candidates refine sees (k=10 x 4)
    index = BioHashIndexRefine(base, "l2", k_factor=4)
    index.add(xb)
    D, I = index.search(xq, 10)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (30, 10)
    for q in range(30):
        d_all = ((xb[Ic[q]] - xq[q]) ** 2).sum(axis=1)
        expected = np.sort(d_all)[:10]
        np.testing.assert_allclose(D[q], expected, rtol=1e-5)
        np.testing.assert_allclose(((xb[I[q]] - xq[q]) ** 2).sum(axis=1), D[q], rtol=1e-5)
        assert set(I[q]) <= set(Ic[q])


def test_candidates_come_from_a_shortlist_of_twice_their_number(clustered):
    """With asymmetric scoring the base proposes its k k_factor best by weighted distance
    among 2 k k_factor Hamming candidates (SHORTLIST), unless params set the shortlist."""
    xb = clustered[0]
    xq = xb[:30] + 0.3
    base = BioHashIndex(32, 8, n_hidden=64, epochs=0)
    base.train(xb)
    plain = copy.deepcopy(base)
    plain.add(xb)
    index = BioHashIndexRefine(base, "l2", k_factor=4)
    index.add(xb)
    for params, shortlist in ((None, 80), ({"shortlist": 200}, 200)):
        _, Ic = plain.search(xq, 40, params={"shortlist": shortlist})
        D, I = index.search(xq, 10, params=params)
        for q in range(30):
            np.testing.assert_allclose(D[q], np.sort(((xb[Ic[q]] - xq[q]) ** 2).sum(1))[:10],
                                       rtol=1e-5)
            assert set(I[q]) <= set(Ic[q])


def test_refine_raises_recall_over_hamming_order(clustered):
    xb = clustered[0]
    rng = np.random.default_rng(1)
    xq = xb[rng.choice(len(xb), 50, replace=False)] + 0.5 * rng.standard_normal((50, 32))
    _, gt = faiss.knn(xq.astype(np.float32), xb, 10)
    plain = BioHashIndex(32, 8, n_hidden=128, epochs=5)
    plain.train(xb)
    plain.add(xb)
    refined = BioHashIndexRefine(BioHashIndex(32, 8, n_hidden=128, epochs=5), "l2", k_factor=8)
    refined.train(xb)
    refined.add(xb)
    r_plain = recall_at_k(plain.search(xq, 10)[1], gt, 10)
    r_refined = recall_at_k(refined.search(xq, 10)[1], gt, 10)
    assert r_refined > r_plain + 0.1, (r_plain, r_refined)


def test_inner_product_order_and_padding(base, clustered):
    xb = clustered[0]
    index = BioHashIndexRefine(base, "ip", k_factor=2)
    index.add(xb[:3])
    D, I = index.search(xb[:2], 5)
    np.testing.assert_allclose(D[:, :3], np.sort(xb[:2] @ xb[:3].T, axis=1)[:, ::-1], rtol=1e-5)
    assert (I[:, 3:] == -1).all() and (D[:, 3:] == -FLT_MAX).all()
    l2 = BioHashIndexRefine(BioHashIndex(32, 4, n_hidden=64, epochs=1), "l2")
    l2.train(xb[:50])
    D, I = l2.search(xb[:1], 2)
    assert (I == -1).all() and (D == FLT_MAX).all()


def test_ids_remove_reset_and_reconstruct(base, clustered):
    xb = clustered[0]
    index = BioHashIndexRefine(base, k_factor=3)
    index.add(xb[:20])
    index.add_with_ids(xb[20:25], np.arange(100, 105))
    assert index.ntotal == 25
    np.testing.assert_array_equal(index.reconstruct_batch([102, 3]), xb[[22, 3]])
    assert index.remove_ids(np.array([3, 102, 999])) == 2
    assert index.ntotal == 23 and index.refine_index.ntotal == 23
    D, I = index.search(xb[[3, 22]], 23)
    assert not np.isin([3, 102], I).any()
    index.add(xb[:1])                                   # next id is past the largest id
    np.testing.assert_array_equal(index.reconstruct_batch([105]), xb[:1])
    with pytest.raises(ValueError, match="already in the index"):
        index.add_with_ids(xb[:1], [105])
    assert index.refine_index.ntotal == index.ntotal    # a refused add leaves both in step
    index.reset()
    assert index.ntotal == 0 and index.refine_index.ntotal == 0 and index.is_trained
    index.add(xb[:2])
    assert sorted(index.search(xb[:1], 2)[1][0]) == [0, 1]


def test_train_through_wrapper(clustered):
    index = BioHashIndexRefine(BioHashIndex(32, 4, n_hidden=64, epochs=2))
    assert not index.is_trained
    index.train(clustered[0])
    assert index.is_trained and index.d == 32


def test_bad_arguments(base, clustered):
    with pytest.raises(TypeError, match="base_index"):
        BioHashIndexRefine(faiss.IndexFlatL2(32))
    with pytest.raises(ValueError, match="metric"):
        BioHashIndexRefine(base, "cosine")
    with pytest.raises(ValueError, match="k_factor"):
        BioHashIndexRefine(base, k_factor=0.5)
    index = BioHashIndexRefine(base)
    with pytest.raises(TypeError, match="k_factor"):
        index.k_factor = "4"
    with pytest.raises(ValueError, match="xq"):
        index.search(clustered[0][:, :5], 1)
    with pytest.raises(ValueError, match="k must be"):
        index.search(clustered[0][:1], 0)
    index.add(clustered[0][:50])
    for k in (2**40, 2**62):   # issue: MemoryError where BioHashIndex raises ValueError
        with pytest.raises(ValueError, match=f"k={k} is too large"):
            index.search(clustered[0][:3], k)
    with pytest.raises(ValueError, match=f"k={2**40} is too large"):
        base.search(clustered[0][:3], 2**40)
    index.reset()
    base.add(clustered[0][:1])
    with pytest.raises(ValueError, match="empty"):
        BioHashIndexRefine(base)


def test_write_read_round_trip(base, clustered, tmp_path):
    from biohash_index._refine import read_index_refine, write_index_refine
    xb = clustered[0]
    index = BioHashIndexRefine(base, "ip", k_factor=3)
    index.add(xb[:100])
    index.add_with_ids(xb[100:110], np.arange(500, 510))
    index.remove_ids(np.array([509, 7]))
    path = tmp_path / "refine.arrow"
    write_index_refine(index, path)
    loaded = read_index_refine(path)
    assert BioHashIndexRefine.load(path).ntotal == 108
    assert (loaded.metric, loaded.k_factor, loaded.ntotal) == ("ip", 3.0, 108)
    for a, b in zip(loaded.search(xb[:20], 5), index.search(xb[:20], 5)):
        np.testing.assert_array_equal(a, b)
    loaded.add(xb[:1])                                  # next id survives the round trip
    np.testing.assert_array_equal(loaded.reconstruct_batch([510]), xb[:1])


def test_failed_write_keeps_previous_file_and_bad_files(base, clustered, tmp_path):
    from biohash_index import BioHashFormatError
    from biohash_index._refine import read_index_refine, write_index_refine
    index = BioHashIndexRefine(base)
    index.add(clustered[0][:10])
    path = tmp_path / "refine.arrow"
    write_index_refine(index, path)
    before = path.read_bytes()
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        write_index_refine(index, tmp_path / "dir")       # cannot replace a directory
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "refine.arrow"]
    path.write_bytes(before[:100])
    with pytest.raises(BioHashFormatError, match="refine.arrow"):
        read_index_refine(path)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_exact_distances_find_vectors_under_ids_in_any_order(base, clustered, metric):
    """The exact distances are those of the vectors stored under each candidate's id,
    whether ids came in increasing order (found by binary search) or not, before and after
    removals and further adds."""
    xb = clustered[0]
    xq = xb[:25] + 0.2
    index = BioHashIndexRefine(base, metric, k_factor=4)
    ids = np.random.default_rng(2).permutation(np.arange(1000, 1000 + len(xb)))
    index.add_with_ids(xb[:400], ids[:400])
    vector_of = dict(zip(ids.tolist(), xb))

    def check():
        D, I = index.search(xq, 10)
        for q in range(len(xq)):
            x = np.array([vector_of[i] for i in I[q]])
            want = ((x - xq[q]) ** 2).sum(1) if metric == "l2" else x @ xq[q]
            np.testing.assert_allclose(D[q], want, rtol=1e-5, atol=1e-5)
    check()
    index.remove_ids(ids[:100])
    for i in ids[:100].tolist():
        del vector_of[i]
    check()
    index.add_with_ids(xb[400:], ids[400:])
    check()
    index.add(xb[:50])                       # ids after the largest: in order again
    vector_of.update(zip(range(ids.max() + 1, ids.max() + 51), xb[:50]))
    check()


@pytest.mark.parametrize("d", [5, 8, 100, 128, 200, 384])
def test_l2_kernel_equals_numpys_sum_bit_for_bit(d):
    """The refine index's exact distances are numpy's float32 sums, to the last bit."""
    from biohash_index._refine_kernels import l2_distances
    rng = np.random.default_rng(d)
    x = (rng.standard_normal((300, d)) * rng.uniform(0.1, 100, (300, 1))).astype(np.float32)
    xq = rng.standard_normal((7, d)).astype(np.float32)
    pos = rng.integers(-1, 300, (7, 20))
    D = l2_distances(xq, x, pos, np.float32(-5))
    expected = np.sum((x[np.maximum(pos, 0)] - xq[:, None, :]) ** 2, axis=2, dtype=np.float32)
    expected[pos < 0] = -5
    assert D.dtype == np.float32
    np.testing.assert_array_equal(D, expected)


@pytest.mark.parametrize("ids", [np.arange(5, 505), np.arange(0, 1000, 2),
                                 np.random.default_rng(0).permutation(500) - 600])
def test_candidates_are_found_whatever_the_stored_ids(ids):
    """Consecutive, gapped, unordered and negative ids: the exact distances are those of
    the vectors stored under each id."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((len(ids), 16)).astype(np.float32)
    refine = BioHashIndexRefine(BioHashIndex(16, 8), k_factor=4)
    refine.train(x)
    refine.add_with_ids(x, ids)
    D, I = refine.search(x[:20], 5)
    found = {int(i): j for j, i in enumerate(ids)}
    for q in range(20):
        rows = [found[int(i)] for i in I[q]]
        np.testing.assert_allclose(D[q], ((x[rows] - x[q]) ** 2).sum(1), rtol=1e-5)
    assert (I[:, 0] == ids[:20]).all()   # each query is a stored vector: it comes first
    refine.remove_ids(ids[:10])
    assert not np.isin(refine.search(x[:20], 5)[1], ids[:10]).any()
