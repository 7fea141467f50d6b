"""Top-k in (distance, id) order and exact merging of shard results."""
import faiss
import numpy as np
import pytest

from biohash_index._index import make_storage
from biohash_index._storage import storage_from_faiss
from biohash_index._topk import merge_topk, search_ordered

NBITS = 16


def storage_with(codes, ids, kind="flat"):
    storage = make_storage(kind, NBITS, nlist=4, nprobe=2)
    storage.train(codes)
    storage.add(codes, ids)
    return storage


def copy_of(storage):
    return storage_from_faiss(faiss.deserialize_index_binary(
        faiss.serialize_index_binary(storage.index)))


def random_codes(rng, n):
    """Codes with 3 of 16 bits set: few distinct distances, many ties."""
    bits = np.zeros((n, NBITS), np.uint8)
    for row in bits:
        row[rng.choice(NBITS, 3, replace=False)] = 1
    return np.packbits(bits, axis=1, bitorder="little")


def test_ties_are_broken_by_id_even_past_the_kth_result():
    codes = np.zeros((10, NBITS // 8), np.uint8)
    ids = np.arange(10, dtype=np.int64)[::-1].copy()  # stored in descending id order
    D, I = search_ordered(storage_with(codes, ids), codes[:2], 4)
    np.testing.assert_array_equal(I, [[0, 1, 2, 3]] * 2)
    np.testing.assert_array_equal(D, 0)


def test_missing_results_come_last():
    rng = np.random.default_rng(0)
    codes = random_codes(rng, 3)
    D, I = search_ordered(storage_with(codes, np.array([7, 5, 9])), codes, 5)
    assert (I[:, 3:] == -1).all() and (D[:, 3:] == 2**31 - 1).all()
    assert sorted(I[0, :3]) == [5, 7, 9]


@pytest.mark.parametrize("kind", ["flat", "ivf"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merged_shards_equal_one_storage(kind, seed):
    rng = np.random.default_rng(seed)
    codes = random_codes(rng, 400)
    ids = rng.permutation(10_000)[:400].astype(np.int64)
    xq = random_codes(rng, 30)
    template = make_storage(kind, NBITS, nlist=4, nprobe=2)
    template.train(codes)  # trained and empty: every shard has the same IVF lists
    whole = copy_of(template)
    whole.add(codes, ids)
    shard_of = rng.integers(0, 3, len(codes))
    parts = []
    for s in range(3):
        shard = copy_of(template)
        shard.add(codes[shard_of == s], ids[shard_of == s])
        parts.append(search_ordered(shard, xq, 25))
    D, I = merge_topk([p[0] for p in parts], [p[1] for p in parts], 25)
    Dw, Iw = search_ordered(whole, xq, 25)
    np.testing.assert_array_equal(D, Dw)
    np.testing.assert_array_equal(I, Iw)
    np.testing.assert_array_equal(D, whole.search(xq, 25)[0])  # faiss finds the same distances
