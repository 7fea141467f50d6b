"""The router of IVF storage (``_router.py``, ``RoutedCodeStorage``): which lists vectors
are stored in and queries probe, each vector once in every answer, the answer of flat
storage with every list probed, selectors, persistence and bad input."""
import copy

import faiss
import numpy as np
import pytest

from biohash_index import BioHashFormatError, BioHashIndex, read_index
from biohash_index._router import ROUTERS, Router, auto_nlist
from biohash_index.evaluation import recall_at_k


@pytest.fixture(scope="module")
def blobs():
    """float32 (4000, 16) points in 40 tight clusters, 50 queries near stored points."""
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((40, 16)).astype(np.float32) * 4
    xb = centers[rng.integers(0, 40, 4000)] + rng.standard_normal((4000, 16), np.float32)
    xq = xb[rng.choice(4000, 50, replace=False)] + 0.3 * rng.standard_normal((50, 16), np.float32)
    return xb, xq


def ivf_index(xb, **kw):
    index = BioHashIndex(xb.shape[1], 8, storage="ivf", **kw)
    index.train(xb)
    index.add(xb)
    return index


def flat_index(xb, **kw):
    index = BioHashIndex(xb.shape[1], 8, **kw)
    index.train(xb)
    index.add(xb)
    return index


def list_members(storage):
    """{list: sorted ids} of a routed storage's faiss inverted lists."""
    from faiss.contrib.inspect_tools import get_invlist
    return {lst: np.sort(get_invlist(storage.index.invlists, lst)[0])
            for lst in range(storage.index.nlist)}


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("assign", [1, 2])
def test_each_vector_is_in_the_lists_of_its_top_units(blobs, router, assign):
    xb, _ = blobs
    index = ivf_index(xb, router=router, assign=assign, nlist=32)
    storage = index.storage
    assert storage.nlist == 32 and storage.router.kind == router
    lists = storage.router.lists_of(xb)
    assert lists.shape == (len(xb), assign)
    acts = storage.router.activations(xb)
    top = np.take_along_axis(acts, lists, 1)
    assert (top[:, :1] >= acts.max(axis=1, keepdims=True)).all()   # the most active unit first
    members = list_members(storage)
    for lst in range(32):
        np.testing.assert_array_equal(members[lst], np.flatnonzero((lists == lst).any(axis=1)))
    assert index.ntotal == len(xb) and sum(map(len, members.values())) == assign * len(xb)


def test_learned_units_route_neighbours_together_far_better_than_random_units(blobs):
    xb, xq = blobs
    _, gt = faiss.knn(xq, xb, 10)
    found = {}
    for router in ROUTERS:
        r = ivf_index(xb, router=router, nlist=40).storage.router
        lists, probes = r.lists_of(xb)[:, 0], r.probe(xq, 1)
        found[router] = np.mean([np.isin(lists[g], p).mean() for g, p in zip(gt, probes)])
    assert found["learned"] > 0.9 and found["kmeans"] > 0.9   # 0.95 both
    assert found["learned"] > found["random"] + 0.2          # 0.67


@pytest.mark.parametrize("assign", [1, 2])
@pytest.mark.parametrize("scoring", ["asymmetric", "hamming"])
def test_every_list_probed_is_flat_storage_exactly(blobs, assign, scoring):
    xb, xq = blobs
    ivf = ivf_index(xb, assign=assign, nlist=16, scoring=scoring)
    flat = flat_index(xb, scoring=scoring)
    for k in (1, 10, 300):
        D, I = ivf.search(xq, k, params={"nprobe": 16})
        Df, If = flat.search(xq, k)
        np.testing.assert_array_equal(I, If)
        np.testing.assert_array_equal(D, Df)
    ivf.nprobe = 16
    for got, want in zip(ivf.range_search(xq, 5), flat.range_search(xq, 5)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("assign", [1, 2])
def test_multi_assigned_vectors_count_once_everywhere(blobs, assign):
    xb, xq = blobs
    index = ivf_index(xb[:1000], assign=assign, nlist=16)
    assert index.ntotal == 1000
    np.testing.assert_array_equal(np.sort(index.storage.ids()), np.arange(1000))
    codes = index.storage.codes()[:, :index.code_size]
    np.testing.assert_array_equal(codes[np.argsort(index.storage.ids())], index.sa_encode(xb[:1000]))
    np.testing.assert_array_equal(index.reconstruct(7), index.sa_decode(index.sa_encode(xb[7:8]))[0])
    _, I = index.search(xq, 50, params={"nprobe": 6})
    for row in I:
        row = row[row >= 0]
        assert len(np.unique(row)) == len(row)
    lims, _, I = index.range_search(xq, 6)
    for q in range(len(xq)):
        part = I[lims[q]:lims[q + 1]]
        assert len(np.unique(part)) == len(part)
    assert index.remove_ids(np.arange(0, 1000, 2)) == 500
    assert index.ntotal == 500 and not (np.isin(list_members_all(index), np.arange(0, 1000, 2))).any()
    _, I = index.search(xq, 10, params={"nprobe": 16})
    assert not np.isin(I, np.arange(0, 1000, 2)).any()


def list_members_all(index):
    return np.concatenate(list(list_members(index.storage).values()))


def test_selectors_filter_routed_search(blobs):
    xb, xq = blobs
    ivf, flat = ivf_index(xb, nlist=16, assign=2), flat_index(xb)
    sel = faiss.IDSelectorRange(100, 2100)
    D, I = ivf.search(xq, 10, params={"sel": sel, "nprobe": 16})
    Df, If = flat.search(xq, 10, params={"sel": sel})
    np.testing.assert_array_equal(I, If)
    np.testing.assert_array_equal(D, Df)
    _, I = ivf.search(xq, 10, params=faiss.SearchParametersIVF(sel=sel, nprobe=3))
    assert ((I == -1) | ((I >= 100) & (I < 2100))).all()


def test_nlist_and_nprobe_are_chosen_at_training(blobs):
    xb, xq = blobs
    index = BioHashIndex(16, 8, storage="ivf")
    assert index.storage.nlist is None and index.nprobe is None
    index.train(xb)
    assert index.storage.nlist == auto_nlist(len(xb)) == round(4 * np.sqrt(len(xb)))
    learned = index.nprobe
    assert 1 <= learned <= index.storage.nlist and learned == index.storage.router.nprobe_
    index.add(xb)
    flat = flat_index(xb)
    _, gt = faiss.knn(xq, xb, 10)
    r_ivf, r_flat = (recall_at_k(i.search(xq, 10)[1], gt, 10) for i in (index, flat))
    assert r_ivf >= 0.95 * r_flat
    index.nprobe = 3
    assert index.nprobe == 3 and index.storage.router.nprobe_ == learned
    fixed = BioHashIndex(16, 8, storage="ivf", nlist=20, nprobe=5)
    fixed.train(xb)
    assert (fixed.storage.nlist, fixed.nprobe) == (20, 5)
    assert auto_nlist(3) == 3 and auto_nlist(1) == 1


def test_fewer_training_rows_than_lists_is_a_clear_error(blobs):
    with pytest.raises(ValueError, match="nlist=64"):
        BioHashIndex(16, 8, storage="ivf", nlist=64).train(blobs[0][:50])
    tiny = BioHashIndex(16, 8, storage="ivf")
    tiny.train(blobs[0][:5])
    assert tiny.storage.nlist == 5 and tiny.nprobe == 5   # too few rows to check: all lists


@pytest.mark.parametrize("kwargs, error, match", [
    ({"router": "faiss"}, ValueError, "router must be one of"),
    ({"assign": 3}, ValueError, "assign must be one of"),
    ({"assign": True}, ValueError, "assign must be one of"),
    ({"assign": 1.0}, ValueError, "assign must be one of"),
    ({"nlist": 0}, ValueError, "nlist"),
    ({"nlist": 2.5}, TypeError, "nlist"),
    ({"nprobe": 0}, ValueError, "nprobe"),
    ({"nprobe": "8"}, TypeError, "nprobe"),
])
def test_bad_router_settings_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        BioHashIndex(16, 8, storage="ivf", **kwargs)


def test_codes_added_without_vectors_are_routed_by_their_decoded_vectors(blobs):
    xb, xq = blobs
    index = ivf_index(xb[:2000], nlist=16)
    other = copy.deepcopy(index)
    index.add_sa_codes(index.sa_encode(xb[2000:]))
    other.add(xb[2000:])
    assert index.ntotal == other.ntotal == len(xb)
    decoded = index.sa_decode(index.sa_encode(xb[2000:]))
    lists = index.storage.router.lists_of(decoded)[:, 0]
    members = list_members(index.storage)
    assert all(i + 2000 in members[lst] for i, lst in enumerate(lists))
    np.testing.assert_array_equal(index.search(xq, 10, params={"nprobe": 16})[1],
                                  other.search(xq, 10, params={"nprobe": 16})[1])


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("assign", [1, 2])
@pytest.mark.parametrize("form", ["one.index", "dir"])
def test_router_round_trips_through_files(blobs, tmp_path, router, assign, form):
    xb, xq = blobs
    index = ivf_index(xb[:3000], router=router, assign=assign, nlist=24)
    index.nprobe = 4
    index.save(tmp_path / form)
    loaded = read_index(tmp_path / form)
    a, b = index.storage.router, loaded.storage.router
    assert (b.kind, b.assign, b.nlist, b.nprobe, b.nprobe_) == (router, assign, 24, 4, 4)
    for x, y in ((a.mean_, b.mean_), (a.units_, b.units_), (a.bias_, b.bias_)):
        np.testing.assert_array_equal(x, y)
    for params in (None, {"nprobe": 9}):
        for got, want in zip(loaded.search(xq, 10, params=params),
                             index.search(xq, 10, params=params)):
            np.testing.assert_array_equal(got, want)
    loaded.add(xb[3000:])          # routes as the saved router says
    index.add(xb[3000:])
    np.testing.assert_array_equal(loaded.search(xq, 10)[1], index.search(xq, 10)[1])


def test_untrained_router_settings_round_trip(tmp_path, blobs):
    index = BioHashIndex(16, 8, storage="ivf", router="kmeans", assign=2, nprobe=7)
    index.save(tmp_path / "u.index")
    loaded = read_index(tmp_path / "u.index")
    r = loaded.storage.router
    assert not loaded.is_trained and (r.kind, r.assign, r.nlist, r.nprobe) == ("kmeans", 2, None, 7)
    loaded.train(blobs[0])
    assert loaded.storage.nlist == auto_nlist(len(blobs[0])) and loaded.nprobe == 7


def rewrite_meta(path, column, value):
    """Replace one column of the saved generation's meta.arrow (checksums updated)."""
    from tests.test_persistence import generation, rewrite, with_column
    gen = generation(path)
    rewrite(gen, "meta.arrow", with_column(gen / "meta.arrow", column, value))


@pytest.mark.parametrize("column, value, match", [
    ("router", "bogus", "bad router"),
    ("router", None, "router None for ivf storage"),
    ("assign", 5, "bad router"),
    ("router_bias", [0.0, 1.0], "router_units must be"),
])
def test_damaged_router_columns_are_refused(blobs, tmp_path, column, value, match):
    ivf_index(blobs[0][:500], nlist=8).save(tmp_path / "a")
    rewrite_meta(tmp_path / "a", column, value)
    with pytest.raises(BioHashFormatError, match=match):
        read_index(tmp_path / "a")


def test_router_of_another_index_type_is_refused(blobs, tmp_path):
    flat_index(blobs[0][:500]).save(tmp_path / "a")
    rewrite_meta(tmp_path / "a", "router", "learned")
    with pytest.raises(BioHashFormatError, match="router 'learned' for flat storage"):
        read_index(tmp_path / "a")


def test_router_requires_enough_rows_per_list_and_samples_beyond():
    router = Router(nlist=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 4)).astype(np.float32)
    router.train(x, x.mean(axis=0), 0)
    assert router.units_.shape == (2, 4) and router.bias_.shape == (2,)
    assert router.sample_rows(10) == 128 and Router().sample_rows(10) == 10


def test_an_ivf_index_of_format_1_trained_again_gets_a_learned_router(tmp_path):
    import shutil
    from pathlib import Path
    data = Path(__file__).parent / "data"
    old = read_index(shutil.copytree(data / "v1-ivf.index", tmp_path / "old.index"))
    nlist, nprobe = old.storage.nlist, old.nprobe
    assert old.storage.faiss_order and not old.storage.routes
    old.reset()
    old.train(np.random.default_rng(0).standard_normal((500, old.d)).astype(np.float32))
    router = old.storage.router
    assert (router.kind, old.storage.nlist, old.nprobe) == ("learned", nlist, nprobe)
    assert not old.storage.faiss_order
