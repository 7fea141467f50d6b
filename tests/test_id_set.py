"""The set of stored ids behind add_with_ids's clash check stays equal to the storage's ids
through adds, removals, resets, refused calls, loads and copies, for every storage kind."""
import copy
import pickle

import numpy as np
import pytest

from biohash_index import BioHashIndex
from biohash_index._id_set import IdSet
from biohash_index._refine import BioHashIndexRefine


def test_id_set_matches_a_python_set_through_random_operations():
    rng = np.random.default_rng(0)
    universe = np.arange(-50, 5000, dtype=np.int64)
    ids, ref = IdSet(), set()
    for step in range(300):
        if rng.random() < 0.7:
            free = np.setdiff1d(universe, np.fromiter(ref, np.int64, len(ref)))
            batch = rng.choice(free, int(rng.integers(0, 40)), replace=False)
            ids.add(batch)
            ref.update(batch.tolist())
        else:       # stored and absent ids, some repeated
            batch = rng.choice(universe, int(rng.integers(0, 60)))
            ids.remove(batch)
            ref.difference_update(batch.tolist())
        if step == 200:
            ids.clear()
            ref.clear()
        np.testing.assert_array_equal(ids.isin(universe), [u in ref for u in universe.tolist()])
        assert len(ids) == len(ref) and ids.nbytes == 8 * len(ref)
        assert len(ids._runs) <= np.log2(max(len(ref), 1)) + 1   # sizes more than double


def test_id_set_refuses_repeated_initial_ids():
    assert len(IdSet(np.array([3, -7, 2**62]))) == 3
    with pytest.raises(ValueError, match=r"distinct.*\[4\]"):
        IdSet(np.array([4, 1, 4]))


@pytest.fixture(scope="module", params=["flat", "ivf", "inverted"])
def empty(request, clustered):
    """A trained, empty index of each storage kind."""
    index = BioHashIndex(32, 4, n_hidden=64, epochs=3, storage=request.param, nlist=4, nprobe=4)
    index.train(clustered[0])
    return index


def assert_in_sync(index):
    """The id set holds exactly the storage's ids."""
    stored = index.storage.ids()
    probe = np.concatenate([stored, np.arange(-5, 1200), [2**62]]).astype(np.int64)
    np.testing.assert_array_equal(index.storage.id_set.isin(probe), np.isin(probe, stored))
    assert len(index.storage.id_set) == index.ntotal
    assert index.storage.id_set.nbytes == 8 * index.ntotal


def refuses(index, xb, ids):
    """add_with_ids(xb[:len(ids)], ids) raises the clash error and changes nothing."""
    before = (index.ntotal, np.sort(index.storage.ids()))
    with pytest.raises(ValueError, match="ids already in the index"):
        index.add_with_ids(xb[:len(ids)], ids)
    assert (index.ntotal, np.sort(index.storage.ids()).tolist()) == (before[0], before[1].tolist())
    assert_in_sync(index)


def test_removed_ids_and_only_those_can_be_added_again(empty, clustered):
    xb = clustered[0]
    index = copy.deepcopy(empty)
    ids = np.random.default_rng(1).permutation(1000)[:600].astype(np.int64)
    for start in range(0, 600, 100):             # several batches: several runs in the set
        index.add_with_ids(xb[start:start + 100], ids[start:start + 100])
    assert_in_sync(index)
    gone, kept = ids[::3], np.setdiff1d(ids, ids[::3])
    assert index.remove_ids(np.concatenate([gone, [5000, -3]])) == len(gone)
    assert_in_sync(index)
    for stored in ([kept[0]], kept[-5:], [gone[0], kept[7]]):   # a mixed batch adds nothing
        refuses(index, xb, np.asarray(stored))
    index.add_with_ids(xb[:len(gone)], gone)
    assert index.ntotal == 600
    assert_in_sync(index)
    refuses(index, xb, gone[:1])
    index.add(xb[:10])                           # add() numbers from the largest id + 1
    assert_in_sync(index)
    index.reset()
    assert_in_sync(index)
    index.add_with_ids(xb[:600], ids)            # everything is new again after reset
    assert_in_sync(index)


@pytest.mark.parametrize("how", ["save-load", "pickle", "deepcopy"])
def test_a_loaded_index_refuses_stored_ids_and_accepts_removed_ones(empty, clustered, how,
                                                                    tmp_path):
    xb = clustered[0]
    index = copy.deepcopy(empty)
    index.add_with_ids(xb[:300], np.arange(0, 600, 2))
    index.remove_ids(np.arange(0, 100, 2))
    if how == "save-load":
        index.save(tmp_path / "idx")
        clone = BioHashIndex.load(tmp_path / "idx")
    else:
        clone = pickle.loads(pickle.dumps(index)) if how == "pickle" else copy.deepcopy(index)
    assert_in_sync(clone)
    refuses(clone, xb, np.array([598]))
    clone.add_with_ids(xb[:50], np.arange(0, 100, 2))
    assert_in_sync(clone)
    refuses(clone, xb, np.array([0]))
    assert_in_sync(index)                        # the original is independent of its copy
    index.add_with_ids(xb[:1], np.array([0]))


def test_refine_index_keeps_the_base_ids_in_sync(empty, clustered, tmp_path):
    xb = clustered[0]
    index = BioHashIndexRefine(copy.deepcopy(empty))
    index.add_with_ids(xb[:200], np.arange(200))
    with pytest.raises(ValueError, match="ids already in the index"):
        index.add_with_ids(xb[:2], np.array([500, 10]))
    assert index.refine_index.ntotal == index.base_index.ntotal == 200
    index.remove_ids(np.arange(50))
    index.save(tmp_path / "refine.arrow")
    clone = BioHashIndexRefine.load(tmp_path / "refine.arrow")
    for i in (index, clone):
        assert_in_sync(i.base_index)
        i.add_with_ids(xb[:50], np.arange(50))
        with pytest.raises(ValueError, match="ids already in the index"):
            i.add_with_ids(xb[:1], np.array([199]))
