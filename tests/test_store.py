"""BioHashStore, the engine of the framework integrations: records, search policy, filters,
files. The LangChain and LlamaIndex stores are tested on top of it in integrations/."""
import os
import subprocess
import sys

import numba
import numpy as np
import pyarrow as pa
import pytest

from biohash_index import BioHashFormatError
from biohash_index._filters import compile_filter
from biohash_index.store import BioHashStore, Record


def records(n, start=0):
    return [Record(f"r{i}", f"text {i}", {"i": i, "even": i % 2 == 0}, {"parent": f"p{i // 10}"})
            for i in range(start, start + n)]


def exact(xb, q, k):
    xn = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    return [f"r{i}" for i in np.argsort(-(xn @ (q / np.linalg.norm(q))), kind="stable")[:k]]


def test_exact_then_hashed_search_and_extra(clustered):
    xb = clustered[0][:200]
    store = BioHashStore(train_threshold=150, epochs=5, seed=1)
    store.add(xb[:149], records(149))
    assert not store.is_hashed and store.hash_length == 16
    assert [h.record.id for h in store.search(xb[3], 6)] == exact(xb[:149], xb[3], 6)
    store.add(xb[149:], records(51, 149))
    assert store.is_hashed and store.index.ntotal == 200
    hits = store.search(xb[160], 3, with_vectors=True)
    assert hits[0].record == records(200)[160] and hits[0].distance == pytest.approx(0, abs=1e-6)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    np.testing.assert_allclose(hits[0].vector, xb[160] / np.linalg.norm(xb[160]), rtol=1e-6)


def test_records_are_copies(clustered):
    store = BioHashStore()
    rec = Record("a", "x", {"tags": ["t"]})
    store.add(clustered[0][:1], [rec])
    rec.metadata["tags"].append("changed by the caller")
    store.get(["a"])[0].metadata["tags"].append("changed by a reader")
    hit = store.search(clustered[0][0], 1)[0].record
    hit.metadata["tags"].append("changed by a searcher")
    hit.extra["new"] = {"nested": [1]}
    assert store.get(["a"])[0].metadata == {"tags": ["t"]}
    assert store.get(["a"])[0].extra == {}


def test_search_among_ids_filters_and_get(clustered):
    xb = clustered[0][:50]
    store = BioHashStore(metric="l2")
    store.add(xb, records(50))
    among = ["r3", "r40", "r7", "missing"]
    hits = store.search(xb[40], 10, ids=among)
    d = np.linalg.norm(xb[[3, 40, 7]] - xb[40], axis=1)
    assert [h.record.id for h in hits] == [among[i] for i in np.argsort(d)]
    np.testing.assert_allclose([h.distance for h in hits], np.sort(d), rtol=1e-4, atol=1e-4)
    odd = store.search(xb[0], 5, filter={"even": False})
    assert len(odd) == 5 and all(h.record.metadata["i"] % 2 for h in odd)
    parent = store.search(xb[0], 50, filter=lambda r: r.extra["parent"] == "p2")
    assert sorted(h.record.id for h in parent) == [f"r{i}" for i in range(20, 30)]
    assert [r.id for r in store.get(["r9", "nope", "r1"])] == ["r9", "r1"]
    assert len(store.get(filter={"i": {"$lt": 5}})) == 5 and len(store.get()) == 50


def test_delete_clear_upsert_and_merge(clustered):
    xb = clustered[0]
    a, b = BioHashStore(), BioHashStore()
    a.add(xb[:20], records(20))
    b.add(xb[20:30], records(10, 20))
    assert a.delete(["r1", "r1", "r2", "zz"]) == 2 and len(a) == 18 and "r1" not in a
    a.add(xb[100:101], [Record("r3", "new", {})])
    assert len(a) == 18 and a.search(xb[100], 1)[0].record.text == "new"
    a.merge_from(b)
    assert len(a) == 28 and a.search(xb[25], 1)[0].record.id == "r25"
    with pytest.raises(ValueError, match="ids in both"):
        a.merge_from(b)
    c = BioHashStore()
    c.add(np.ones((1, 5)), [Record("c", "", {})])
    with pytest.raises(ValueError, match="5 dimensions"):
        a.merge_from(c)
    assert len(a) == 28
    a.clear()
    assert len(a) == 0 and a.search(xb[0], 3) == []


@pytest.mark.parametrize("bad,match", [
    ([Record(1, "x")], "id must be a string"),
    ([Record("a", None)], "text must be a string"),
    ([Record("a", "x", {"k": {1: 2}})], "keys must be strings"),
    ([Record("a", "x", {"k": float("nan")})], "finite"),
    ([Record("a", "x", {"k": np.int64(3)})], "int64"),
    ([Record("a", "x", extra={"t": (1,)})], "come back as a list"),
    ([Record("a", "x"), Record("a", "y")], "distinct"),
    (["not a record"], "must be a Record"),
])
def test_bad_records_are_refused(clustered, bad, match):
    store = BioHashStore()
    with pytest.raises((TypeError, ValueError), match=match):
        store.add(clustered[0][:len(bad)], bad)
    assert len(store) == 0 and store.index is None


def test_bad_options_and_arguments(clustered):
    with pytest.raises(TypeError, match="unknown index option 'epoch'"):
        BioHashStore(epoch=3)
    with pytest.raises(TypeError, match="index_options"):
        BioHashStore(seed=np.int64(3))
    with pytest.raises(ValueError, match="activity"):
        BioHashStore(activity=0)
    store = BioHashStore(n_hidden=4)         # fewer hidden units than the hash length 8
    with pytest.raises(ValueError):
        store.add(clustered[0][:2], records(2))
    assert len(store) == 0 and store.index is None
    store = BioHashStore()
    with pytest.raises(ValueError, match="one row per record"):
        store.add(clustered[0][:3], records(2))
    store.add(clustered[0][:3], records(3))
    with pytest.raises(ValueError, match="k must be >= 1"):
        store.search(clustered[0][0], 0)
    with pytest.raises(TypeError, match="fetch_k"):
        store.search(clustered[0][0], 1, fetch_k=None)
    with pytest.raises(TypeError, match="ids must be strings"):
        store.delete([1])


def test_an_ivf_store_trains_once_it_holds_nlist_documents(clustered):
    """Issue: the add reaching train_threshold with fewer documents than the IVF lists
    raised, but kept its documents (each retry stored another copy)."""
    xb = clustered[0]
    store = BioHashStore(train_threshold=100, storage="ivf", nlist=150, epochs=1)
    store.add(xb[:100], records(100))   # the threshold, but too few for 150 lists: stays exact
    assert len(store) == 100 and not store.is_hashed
    with pytest.raises(ValueError, match="nlist=150"):
        store.train()                    # asked for: refused, and nothing changes
    assert len(store) == 100 and not store.is_hashed
    store.add(xb[100:160], records(60, 100))
    assert len(store) == 160 and store.is_hashed and store.index.ntotal == 160


def test_an_ivf_store_routes_and_keeps_its_router_when_saved(clustered, tmp_path):
    """index_options storage="ivf": the store's index is routed (docs/routing.md says why
    it is not the default) and a saved store searches the same when loaded."""
    xb = clustered[0]
    store = BioHashStore(train_threshold=200, epochs=1, storage="ivf", assign=2)
    store.add(xb[:200], records(200))
    base = store.index.base_index
    assert store.is_hashed and base.storage.kind == "ivf" and base.storage.router.assign == 2
    want = [h.record.id for h in store.search(xb[5], 5)]
    store.save(tmp_path / "s.arrow")
    loaded = BioHashStore.load(tmp_path / "s.arrow")
    assert loaded.index.base_index.storage.router.assign == 2
    assert [h.record.id for h in loaded.search(xb[5], 5)] == want


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
def test_a_store_saved_with_more_threads_trains_where_numba_has_fewer(clustered, tmp_path):
    """Issue: a store saved with n_threads=2, loaded where numba has one thread, failed to
    train on the add that reached the threshold, and kept that add's documents. The saved
    setting is lowered on load, as the index's is."""
    store = BioHashStore(train_threshold=50, n_threads=2, epochs=1)
    store.add(clustered[0][:40], records(40))
    store.save(tmp_path / "s.arrow")
    np.save(tmp_path / "x.npy", clustered[0][40:60])
    code = ("import sys, numpy as np\n"
            "from biohash_index.store import BioHashStore, Record\n"
            "s = BioHashStore.load(sys.argv[1])\n"
            "s.add(np.load(sys.argv[2]), [Record(f'n{i}', '') for i in range(20)])\n"
            "print(len(s), s.is_hashed, s.config['index_options']['n_threads'])\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s.arrow"),
                           str(tmp_path / "x.npy")], capture_output=True, text=True,
                          env={**os.environ, "NUMBA_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["60", "True", "1"]


@pytest.mark.parametrize("n,threshold", [(0, 10), (40, 100), (40, 20)])
def test_save_load_bytes_round_trip(clustered, tmp_path, n, threshold):
    xb = clustered[0][:40]
    store = BioHashStore(metric="l2", train_threshold=threshold, epochs=3)
    store.add(xb, records(40))
    store.delete([f"r{i}" for i in range(n, 40)])
    store.save(tmp_path / "s.arrow")
    for loaded in (BioHashStore.load(tmp_path / "s.arrow"),
                   BioHashStore.from_bytes(store.to_bytes())):
        assert loaded.config == store.config and loaded.is_hashed == store.is_hashed
        assert loaded.get() == store.get()
        assert loaded.search(xb[5], 4) == store.search(xb[5], 4)
        loaded.add(xb[:1], [Record("new", "n")])      # keys continue after the loaded ones
        assert "new" in loaded and len(loaded) == len(store) + 1


def test_damaged_files_raise_format_errors(clustered, tmp_path):
    store = BioHashStore()
    store.add(clustered[0][:5], records(5))
    table = store.to_table()
    cases = {
        "columns": table.drop_columns(["extra"]),
        "json": table.set_column(3, "metadata", pa.array(["{"] * 5)),
        "not a dict": table.set_column(3, "metadata", pa.array(["[1]"] * 5)),
        "ids": table.set_column(0, "id", pa.array(["a"] * 5)),
        "keys": table.set_column(1, "key", pa.array([0, 1, 2, 3, 99], pa.int64())),
        "config": table.replace_schema_metadata({**table.schema.metadata,
                                                 b"config": b'{"metric": "dot"}'}),
        "format": table.replace_schema_metadata({b"format": b"other"}),
        "dim": table.replace_schema_metadata({**table.schema.metadata, b"dim": b"-3"}),
    }
    for name, bad in cases.items():
        with pytest.raises(BioHashFormatError):
            BioHashStore.from_table(bad, name)
    (tmp_path / "junk.arrow").write_bytes(b"not arrow at all")
    with pytest.raises(BioHashFormatError, match="not a valid Arrow IPC file"):
        BioHashStore.load(tmp_path / "junk.arrow")
    with pytest.raises(BioHashFormatError):
        BioHashStore.from_bytes(store.to_bytes()[:100])


@pytest.mark.parametrize("spec,meta,expected", [
    ({"a": 1}, {"a": 1}, True),
    ({"a": 1}, {"a": 2}, False),
    ({"a": [1, 2]}, {"a": 2}, True),
    ({"a": {"$ne": 1}}, {}, True),
    ({"a": {"$nin": [1]}}, {"a": None}, True),
    ({"a": {"$gt": 1}}, {}, False),
    ({"a": {"$gt": 1}}, {"a": "text"}, False),
    ({"a": {"$gte": 1, "$lt": 3}}, {"a": 3}, False),
    ({"t": {"$contains": "x"}}, {"t": ["x", "y"]}, True),
    ({"t": {"$any": ["q", "y"]}}, {"t": ["x", "y"]}, True),
    ({"t": {"$all": ["q", "y"]}}, {"t": ["x", "y"]}, False),
    ({"t": {"$any": ["q", "ell"]}}, {"t": "hello"}, True),   # substrings, as LlamaIndex's ANY
    ({"t": {"$all": ["he", "lo"]}}, {"t": "hello"}, True),
    ({"t": {"$all": ["he", "q"]}}, {"t": "hello"}, False),
    ({"t": {"$any": [1]}}, {"t": "hello"}, False),
    ({"s": {"$text_match": "ell"}}, {"s": "hello"}, True),
    ({"s": {"$text_match_insensitive": "ELL"}}, {"s": "hello"}, True),
    ({"s": {"$is_empty": True}}, {"s": []}, True),
    ({"s": {"$is_empty": False}}, {"s": "x"}, True),
    ({"$or": [{"a": 1}, {"b": 1}]}, {"b": 1}, True),
    ({"$and": [{"a": 1}, {"b": 1}]}, {"b": 1}, False),
    ({"$not": {"a": 1}}, {"a": 1}, False),
    ({"d": {"x": 1}}, {"d": {"x": 1}}, True),          # a dict without operators: equality
])
def test_filter_semantics(spec, meta, expected):
    assert compile_filter(spec)(meta) is expected


@pytest.mark.parametrize("spec,error,match", [
    ({"a": {"$regex": "x"}}, ValueError, "not supported"),
    ({"$nor": []}, ValueError, "top level"),
    ({"$and": {"a": 1}}, TypeError, "list of filters"),
    ({"a": {"$in": "abc"}}, TypeError, "takes a list"),
    ({"a": {"$text_match": 3}}, TypeError, "takes a string"),
    ({"a": {"$is_empty": "yes"}}, TypeError, "True or False"),
    ("a", TypeError, "must be a dict"),
])
def test_bad_filters(spec, error, match):
    with pytest.raises(error, match=match):
        compile_filter(spec)
