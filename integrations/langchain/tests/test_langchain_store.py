"""BioHashVectorStore beyond the standard suite: the training policy, persistence, MMR, filters."""
import os
import re
import warnings
from enum import Enum

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("langchain_biohash", reason="install integrations/langchain")

from langchain_core.embeddings import Embeddings  # noqa: E402

from langchain_biohash import BioHashVectorStore  # noqa: E402
from langchain_biohash.vectorstores import default_hash_length  # noqa: E402

N, D = 400, 24


class TableEmbeddings(Embeddings):
    """Texts "t<i>" embed to row i of a fixed clustered table (other texts: rows by hash)."""

    def __init__(self):
        rng = np.random.default_rng(0)
        centers = rng.standard_normal((8, D)) * 3
        self.labels = rng.integers(0, 8, N)
        self.table = centers[self.labels] + rng.standard_normal((N, D))

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        return self.table[int(text[1:]) % N].tolist()


@pytest.fixture(scope="module")
def emb():
    return TableEmbeddings()


def texts(n):
    return [f"t{i}" for i in range(n)]


def exact_ids(emb, query_row, n, k):
    x = emb.table[:n] / np.linalg.norm(emb.table[:n], axis=1, keepdims=True)
    q = emb.table[query_row] / np.linalg.norm(emb.table[query_row])
    return [f"id{i}" for i in np.argsort(-(x @ q), kind="stable")[:k]]


def test_exact_until_threshold_then_hashed(emb):
    store = BioHashVectorStore(emb, train_threshold=300, epochs=10, k_factor=10)
    store.add_texts(texts(299), ids=[f"id{i}" for i in range(299)])
    assert not store.is_hashed and len(store) == 299
    for q in (0, 17, 250):                       # before training: exactly the cosine ranking
        assert [d.id for d in store.similarity_search(f"t{q}", k=8)] == exact_ids(emb, q, 299, 8)
    store.add_texts(["t299"], ids=["id299"])
    assert store.is_hashed and store.index.ntotal == 300 and store.index.base_index.is_trained
    assert store.index.base_index.hash_length == 12 == default_hash_length(D)   # D // 2
    recall = np.mean([len(set(d.id for d in store.similarity_search(f"t{q}", k=10))
                          & set(exact_ids(emb, q, 300, 10))) / 10 for q in range(0, 300, 7)])
    assert recall > 0.8, recall
    store.add_texts(texts(N)[300:], ids=[f"id{i}" for i in range(300, N)])   # encoded, no retrain
    docs, scores = zip(*store.similarity_search_with_score("t350", k=3))
    assert docs[0].id == "id350" and abs(scores[0]) < 1e-5 and list(scores) == sorted(scores)


def test_delete_and_upsert_after_training(emb):
    store = BioHashVectorStore(emb, train_threshold=100, epochs=5)
    store.add_texts(texts(150), ids=[f"id{i}" for i in range(150)])
    assert store.is_hashed
    store.delete(["id3", "id4", "missing"])
    assert len(store) == 148 and store.index.ntotal == 148
    assert store.get_by_ids(["id3", "id5"])[0].id == "id5"
    store.add_texts(["t200"], metadatas=[{"v": 2}], ids=["id5"])     # replace id5's content
    assert len(store) == 148
    top = store.similarity_search("t200", k=1)[0]
    assert (top.id, top.page_content, top.metadata) == ("id5", "t200", {"v": 2})
    store.delete()
    assert len(store) == 0 and store.similarity_search("t1", k=2) == []


@pytest.mark.parametrize("n,metric", [(50, "cosine"), (150, "l2")])
def test_save_load_round_trip(emb, tmp_path, n, metric):
    store = BioHashVectorStore(emb, metric=metric, train_threshold=100, epochs=5, seed=3)
    store.add_texts(texts(n), metadatas=[{"i": i, "tag": ["a", "b"][i % 2]} for i in range(n)])
    store.save_local(tmp_path)
    table = pa.ipc.open_file(str(tmp_path / "index.arrow")).read_all()    # plain Arrow
    assert table.num_rows == n and table.column_names[:4] == ["id", "key", "text", "metadata"]
    loaded = BioHashVectorStore.load_local(tmp_path, emb)
    assert loaded.is_hashed == store.is_hashed == (n >= 100)
    for q in ("t1", "t42", "t7"):
        assert (loaded.similarity_search_with_score(q, k=5)
                == store.similarity_search_with_score(q, k=5))
    loaded.add_texts(["t3"], ids=["new"])                             # keys continue, no clash
    assert loaded.get_by_ids(["new"])[0].page_content == "t3"


def test_failed_save_keeps_previous_file(emb, tmp_path, monkeypatch):
    store = BioHashVectorStore(emb)
    store.add_texts(texts(5))
    store.save_local(tmp_path, "kb")
    before = (tmp_path / "kb.arrow").read_bytes()
    store.add_texts(["t6"])

    def disk_full(*args):
        raise OSError("no space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="no space"):
        store.save_local(tmp_path, "kb")
    monkeypatch.undo()
    assert (tmp_path / "kb.arrow").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb.arrow"]
    assert len(BioHashVectorStore.load_local(tmp_path, emb, "kb")) == 5


def test_load_rejects_other_arrow_files(emb, tmp_path):
    with pa.OSFile(str(tmp_path / "index.arrow"), "wb") as sink:
        with pa.ipc.new_file(sink, pa.schema([("x", pa.int64())])) as w:
            w.write_table(pa.table({"x": [1]}))
    with pytest.raises(ValueError, match="not a biohash-store"):
        BioHashVectorStore.load_local(tmp_path, emb)


def test_mmr_filter_and_retriever(emb):
    store = BioHashVectorStore.from_texts(
        texts(60), emb, metadatas=[{"label": int(emb.labels[i])} for i in range(60)])
    label = int(emb.labels[0])
    same = store.similarity_search("t0", k=5, filter={"label": label})
    assert len(same) == 5 and all(d.metadata["label"] == label for d in same)
    odd = store.similarity_search("t0", k=3, filter=lambda m: m["label"] != label)
    assert all(d.metadata["label"] != label for d in odd)
    mmr = store.max_marginal_relevance_search("t0", k=4, fetch_k=30, lambda_mult=0.1)
    plain = store.similarity_search("t0", k=4)
    assert mmr[0].id == plain[0].id and len({d.metadata["label"] for d in mmr}) > 1
    assert [d.id for d in store.as_retriever(search_kwargs={"k": 3}).invoke("t0")] == [
        d.id for d in plain[:3]]
    rel = store.similarity_search_with_relevance_scores("t0", k=2)
    assert rel[0][1] == pytest.approx(1.0, abs=1e-5) and 0 <= rel[1][1] <= 1


def test_bad_arguments(emb):
    with pytest.raises(ValueError, match="metric"):
        BioHashVectorStore(emb, metric="dot")
    with pytest.raises(ValueError, match="k_factor"):
        BioHashVectorStore(emb, k_factor=0.5)
    with pytest.raises(TypeError, match="train_threshold"):
        BioHashVectorStore(emb, train_threshold=10.5)
    store = BioHashVectorStore(emb)
    with pytest.raises(ValueError, match="same length"):
        store.add_texts(["t1", "t2"], metadatas=[{}])
    with pytest.raises(ValueError, match="distinct"):
        store.add_texts(["t1", "t2"], ids=["a", "a"])
    store.add_texts(["t1"])
    with pytest.raises(ValueError, match="must have 24 columns"):
        store.similarity_search_by_vector([0.0] * (D + 1))
    with pytest.raises(TypeError, match="filter"):
        store.similarity_search("t1", filter="label")


# ---------------------------------------------------------------- reliability (issue 14)
def small_store(emb, n=30, **options):
    store = BioHashVectorStore(emb, **options)
    store.add_texts(texts(n), metadatas=[{"i": i} for i in range(n)],
                    ids=[f"id{i}" for i in range(n)])
    return store


@pytest.mark.parametrize("call", [
    lambda s: s.add_texts(["t1"], metadatas=[{"bad": {1, 2}}], ids=["new"]),    # not JSON
    lambda s: s.add_texts(["t1"], metadatas=[{"bad": {1, 2}}], ids=["id3"]),    # failed upsert
    lambda s: s.add_texts(["t1", "t2"], metadatas=[{}, {"x": (1, 2)}], ids=["id4", "n"]),
    lambda s: s.add_texts(["t1"], metadatas=[{1: "int key"}], ids=["new"]),
    lambda s: s.add_texts(["t1"], ids=[5]),
    lambda s: s.add_texts([None], ids=["new"]),
    lambda s: s.add_texts(["t1"], metadatas=["not a dict"]),
    lambda s: s.add_embeddings([("t1", [0.0] * (D + 1))], ids=["id5"]),         # wrong dimension
    lambda s: s.add_embeddings([("t1", [float("nan")] * D)], ids=["id5"]),
    lambda s: s.delete([5]),
    lambda s: s.similarity_search("t1", k=0),
    lambda s: s.similarity_search("t1", k=2, filter={"i": {"$regex": "x"}}),
    lambda s: s.max_marginal_relevance_search("t1", k=0),
    lambda s: s.merge_from(small_store(TableEmbeddings(), 3)),                    # ids overlap
])
@pytest.mark.parametrize("hashed", [False, True])
def test_failed_call_leaves_store_unchanged(emb, tmp_path, call, hashed):
    store = small_store(emb, train_threshold=20 if hashed else 100, epochs=3)
    assert store.is_hashed == hashed
    store.save_local(tmp_path, "before")
    results = store.similarity_search_with_score("t7", k=5)
    with pytest.raises((TypeError, ValueError)) as info:
        call(store)
    assert "Error" not in str(info.value)[:20] and str(info.value)     # says what is wrong
    store.save_local(tmp_path, "after")                                # byte for byte
    assert (tmp_path / "after.arrow").read_bytes() == (tmp_path / "before.arrow").read_bytes()
    assert store.similarity_search_with_score("t7", k=5) == results
    assert [d.id for d in store.max_marginal_relevance_search("t7", k=3)]


def test_none_metadata_and_k_errors(emb):
    store = small_store(emb, 5)
    assert store.add_texts(["t9"], metadatas=[None], ids=["C"]) == ["C"]
    assert store.get_by_ids(["C"])[0].metadata == {}
    assert len(store.similarity_search("t9", k=10)) == 6
    with pytest.raises(ValueError, match="k must be >= 1"):
        store.similarity_search("t1", k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        store.similarity_search("t1", k=2.5)


def test_concurrent_delete_and_readd_never_break_searches(emb):
    import sys
    import threading
    store = small_store(emb, 40)
    errors, stop = [], threading.Event()

    def churn():
        try:
            for r in range(300):
                ids = [f"id{(3 * r + j) % 40}" for j in range(3)]
                store.delete(ids)
                store.add_texts([f"t{i[2:]}" for i in ids], ids=ids)
        except Exception as e:      # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            stop.set()

    def search():
        while not stop.is_set():
            try:
                store.similarity_search("t5", k=10)
                store.max_marginal_relevance_search("t5", k=3, fetch_k=10)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=f) for f in (churn, search, search)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
    assert len(store) == 40


def test_metadata_keys_and_emptied_hashed_store_survive_save(emb, tmp_path):
    store = BioHashVectorStore(emb, train_threshold=50, epochs=3)
    with pytest.raises(TypeError, match="keys must be strings"):
        store.add_texts(["t1"], metadatas=[{"nested": {2024: "x"}}])
    store.add_texts(texts(60), metadatas=[{"year": 2000 + i % 30, "tags": ["a", str(i % 3)]}
                                          for i in range(60)])
    store.save_local(tmp_path)
    loaded = BioHashVectorStore.load_local(tmp_path, emb)
    flt = {"year": {"$gte": 2025}, "tags": {"$contains": "1"}}
    assert (loaded.similarity_search_with_score("t3", k=4, filter=flt)
            == store.similarity_search_with_score("t3", k=4, filter=flt))
    weights = store.index.base_index.model.weights_.copy()
    store.delete()
    assert store.is_hashed and len(store) == 0
    store.save_local(tmp_path)
    emptied = BioHashVectorStore.load_local(tmp_path, emb)
    assert emptied.is_hashed and len(emptied) == 0
    np.testing.assert_array_equal(emptied.index.base_index.model.weights_, weights)


def metadata_rows(n):
    return [{"label": int(i % 5), "size": i, "kind": ["faq", "howto", "api"][i % 3],
             "tags": ["x"] if i % 2 else ["y", "z"]} for i in range(n)]


@pytest.mark.parametrize("flt,expected", [
    ({"kind": {"$eq": "faq"}}, lambda m: m["kind"] == "faq"),
    ({"kind": {"$ne": "faq"}}, lambda m: m["kind"] != "faq"),
    ({"size": {"$gt": 30, "$lte": 45}}, lambda m: 30 < m["size"] <= 45),
    ({"size": {"$gte": 50}}, lambda m: m["size"] >= 50),
    ({"size": {"$lt": 4}}, lambda m: m["size"] < 4),
    ({"kind": {"$in": ["faq", "api"]}}, lambda m: m["kind"] in ("faq", "api")),
    ({"kind": ["faq", "api"]}, lambda m: m["kind"] in ("faq", "api")),
    ({"label": {"$nin": [0, 1, 2]}}, lambda m: m["label"] not in (0, 1, 2)),
    ({"$and": [{"label": 1}, {"size": {"$gt": 20}}]}, lambda m: m["label"] == 1 and m["size"] > 20),
    ({"$or": [{"label": 1}, {"kind": "api"}]}, lambda m: m["label"] == 1 or m["kind"] == "api"),
    ({"$not": {"label": 1}}, lambda m: m["label"] != 1),
    ({"tags": {"$contains": "z"}, "missing": {"$ne": 3}}, lambda m: "z" in m["tags"]),
    ({"missing": {"$gt": 3}}, lambda m: False),
    ({"kind": {"$gt": 3}}, lambda m: False),                 # other type: no match, no error
])
def test_filter_operators_match_a_scan(emb, flt, expected):
    n = 60
    store = BioHashVectorStore.from_texts(texts(n), emb, metadatas=metadata_rows(n),
                                          ids=[f"id{i}" for i in range(n)])
    want = [f"id{i}" for i in range(n) if expected(metadata_rows(n)[i])]
    for q in ("t0", "t31"):
        got = [d.id for d in store.similarity_search(q, k=n, filter=flt)]
        assert sorted(got) == sorted(want)
        top = [d.id for d in store.similarity_search(q, k=3, filter=flt)]
        assert top == [i for i in exact_ids(emb, int(q[1:]), n, n) if i in want][:3]


def test_unsupported_filter_operator_is_refused(emb):
    store = small_store(emb, 5)
    with pytest.raises(ValueError, match=r"'\$regex'.*not supported"):
        store.similarity_search("t1", filter={"i": {"$regex": "^a"}})
    with pytest.raises(ValueError, match=r"'\$nor'"):
        store.similarity_search("t1", filter={"$nor": [{"i": 1}]})
    with pytest.raises(TypeError, match=r"\$in.*takes a list"):
        store.similarity_search("t1", filter={"i": {"$in": 3}})


@pytest.mark.parametrize("hashed", [False, True])
def test_filter_fetches_more_when_few_candidates_match(emb, hashed):
    n = 300
    store = BioHashVectorStore(emb, train_threshold=200 if hashed else 1000, epochs=5)
    store.add_texts(texts(n), metadatas=[{"rare": i % 97 == 0} for i in range(n)],
                    ids=[f"id{i}" for i in range(n)])
    assert store.is_hashed == hashed
    rare = {f"id{i}" for i in range(0, n, 97)}                    # 4 documents
    got = store.similarity_search("t1", k=3, filter={"rare": True}, fetch_k=5)
    assert len(got) == 3 and {d.id for d in got} <= rare
    assert len(store.similarity_search("t1", k=10, filter={"rare": True})) == 4


def test_searches_go_on_while_the_hash_trains(emb, monkeypatch):
    import threading

    from biohash_index.store import BioHashStore
    started, release = threading.Event(), threading.Event()
    fit = BioHashStore._fit

    def slow_fit(self, x, keys):
        started.set()
        assert release.wait(30)
        return fit(self, x, keys)
    monkeypatch.setattr(BioHashStore, "_fit", slow_fit)
    store = small_store(emb, 99, train_threshold=100, epochs=3)
    adder = threading.Thread(target=store.add_texts, args=(["t99"],), kwargs={"ids": ["id99"]})
    adder.start()
    try:
        assert started.wait(30)
        found = []                  # searched in another thread: must not wait for training
        searcher = threading.Thread(target=lambda: found.append(
            [d.id for d in store.similarity_search("t7", k=5)]))
        searcher.start()
        searcher.join(10)
        assert not searcher.is_alive() and found[0] == exact_ids(emb, 7, 100, 5)
        assert not store.is_hashed
        store.delete(["id7", "id8"])                 # changes during training ...
        store.add_texts(["t150", "t151"], ids=["late1", "late2"])
    finally:
        release.set()
        adder.join(60)
    assert store.is_hashed and len(store) == 100 == store.index.ntotal   # ... are kept
    assert store.similarity_search("t150", k=1)[0].id == "late1"
    assert "id7" not in {d.id for d in store.similarity_search("t7", k=10)}


# ---------------------------------------------------------------- parity with langchain-community's FAISS
def test_add_embeddings_and_from_embeddings(emb):
    pairs = [(f"t{i}", emb.table[i].tolist()) for i in range(40)]
    store = BioHashVectorStore.from_embeddings(pairs, emb, metadatas=[{"i": i} for i in range(40)],
                                               ids=[f"id{i}" for i in range(40)])
    assert store.similarity_search("t5", k=3) == small_store(emb, 40).similarity_search("t5", k=3)
    assert store.add_embeddings([("other", emb.table[41].tolist())], ids=["x"]) == ["x"]
    assert store.similarity_search("t41", k=1)[0].page_content == "other"


@pytest.mark.parametrize("hashed", [False, True])
def test_merge_from(emb, hashed):
    options = dict(train_threshold=60, epochs=3)
    a = BioHashVectorStore.from_texts(texts(40), emb, ids=[f"a{i}" for i in range(40)], **options)
    b = BioHashVectorStore.from_texts(texts(80)[40:], emb, ids=[f"b{i}" for i in range(40)],
                                      **options)
    if hashed:
        a.train()
    a.merge_from(b)
    assert len(a) == 80 and len(b) == 40 and a.is_hashed
    assert a.similarity_search("t50", k=1)[0].id == "b10"
    with pytest.raises(ValueError, match="metric"):
        a.merge_from(BioHashVectorStore(emb, metric="l2"))
    with pytest.raises(TypeError, match="BioHashVectorStore"):
        a.merge_from(object())


@pytest.mark.parametrize("n", [0, 30, 150])
def test_serialize_to_bytes_round_trip_without_pickle(emb, n):
    store = BioHashVectorStore(emb, train_threshold=100, epochs=3)
    store.add_texts(texts(n), metadatas=[{"i": i, "tags": ["a"]} for i in range(n)])
    data = store.serialize_to_bytes()
    assert isinstance(data, bytes) and data[:6] == b"ARROW1"                 # an Arrow file
    table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    assert table.num_rows == n and "vector" in table.column_names
    loaded = BioHashVectorStore.deserialize_from_bytes(data, emb,
                                                       allow_dangerous_deserialization=False)
    assert len(loaded) == n and loaded.is_hashed == store.is_hashed
    for q in ("t1", "t99"):
        assert (loaded.similarity_search_with_score(q, k=4)
                == store.similarity_search_with_score(q, k=4))
    with pytest.raises(ValueError, match="not a valid Arrow IPC file"):
        BioHashVectorStore.deserialize_from_bytes(data[:-20], emb)


# ---------------------------------------------------------------- swapping from FAISS (issue 24)
class DistanceStrategy(str, Enum):
    """langchain-community's enum (its values), for when that package is not installed."""
    EUCLIDEAN_DISTANCE = "EUCLIDEAN_DISTANCE"
    MAX_INNER_PRODUCT = "MAX_INNER_PRODUCT"
    DOT_PRODUCT = "DOT_PRODUCT"
    JACCARD = "JACCARD"
    COSINE = "COSINE"


@pytest.mark.parametrize("keywords,metric", [
    ({}, "cosine"),
    ({"distance_strategy": DistanceStrategy.EUCLIDEAN_DISTANCE}, "l2"),
    ({"distance_strategy": "EUCLIDEAN_DISTANCE", "normalize_L2": True}, "cosine"),
    ({"normalize_L2": True}, "cosine"),
    ({"distance_strategy": DistanceStrategy.COSINE}, "cosine"),
    ({"metric": "l2", "distance_strategy": DistanceStrategy.EUCLIDEAN_DISTANCE}, "l2"),
])
def test_faiss_metric_keywords_keep_their_meaning(emb, tmp_path, keywords, metric):
    store = BioHashVectorStore.from_texts(texts(20), emb, **keywords)
    assert store.config["metric"] == metric
    store.save_local(tmp_path)
    loaded = BioHashVectorStore.load_local(tmp_path, emb, allow_dangerous_deserialization=True,
                                           **{k: v for k, v in keywords.items() if k != "metric"})
    assert loaded.config["metric"] == metric
    x = np.array(emb.table[:20])
    if metric == "cosine":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[3]
    d = (1 - x @ q) if metric == "cosine" else np.linalg.norm(x - q, axis=1)
    found = loaded.similarity_search_with_score("t3", k=5)
    assert [doc.page_content for doc, _ in found] == [f"t{i}" for i in np.argsort(d)[:5]]
    np.testing.assert_allclose([s for _, s in found], np.sort(d)[:5], atol=1e-5)


@pytest.mark.parametrize("call,exc,word", [
    (lambda emb: BioHashVectorStore(emb, distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT),
     ValueError, "metric='cosine'"),
    (lambda emb: BioHashVectorStore(emb, distance_strategy="JACCARD"), ValueError, "metric="),
    (lambda emb: BioHashVectorStore(emb, metric="l2", normalize_L2=True), ValueError,
     "give one of them"),
    (lambda emb: BioHashVectorStore(emb, docstore={}), TypeError, "BioHashVectorStore(embedding)"),
    (lambda emb: BioHashVectorStore.from_texts(["t1"], emb, index_to_docstore_id={}),
     TypeError, "from_texts"),
    (lambda emb: BioHashVectorStore(emb, embedding_function=emb), TypeError, "once"),
    (lambda emb: BioHashVectorStore(), TypeError, "embedding="),
])
def test_faiss_keywords_without_a_meaning_here_are_refused(emb, call, exc, word):
    with pytest.raises(exc, match=re.escape(word)):
        call(emb)


def test_faiss_loading_keywords(emb, tmp_path):
    store = BioHashVectorStore(embedding_function=emb, relevance_score_fn=lambda d: 0.5)
    store.add_texts(texts(10))
    store.save_local(tmp_path)
    assert store.similarity_search_with_relevance_scores("t1", k=2)[1][1] == 0.5
    with pytest.raises(ValueError, match="metric is 'cosine'.*ask for 'l2'"):
        BioHashVectorStore.load_local(tmp_path, emb,
                                      distance_strategy=DistanceStrategy.EUCLIDEAN_DISTANCE)
    with pytest.raises(ValueError, match="io_flags"):
        BioHashVectorStore.load_local(tmp_path, emb, io_flags=1)
    loaded = BioHashVectorStore.deserialize_from_bytes(
        store.serialize_to_bytes(), emb, allow_dangerous_deserialization=True,
        relevance_score_fn=lambda d: 0.25)
    assert {s for _, s in loaded.similarity_search_with_relevance_scores("t1", k=3)} == {0.25}


def test_faiss_signatures_are_covered():
    """Every keyword of langchain-community FAISS's constructor, from_texts, from_embeddings,
    load_local and deserialize_from_bytes is taken here or refused with a message."""
    faiss_store = pytest.importorskip("langchain_community.vectorstores.faiss")
    import inspect
    ours = {name: set(inspect.signature(getattr(BioHashVectorStore, name)).parameters)
            for name in ("__init__", "_wrap")}
    for name, here in [("__init__", "__init__"), ("load_local", "_wrap"),
                       ("deserialize_from_bytes", "_wrap")]:
        theirs = inspect.signature(getattr(faiss_store.FAISS, name)).parameters
        named = {p for p, v in theirs.items() if v.kind == v.KEYWORD_ONLY or (
            name == "__init__" and v.default is not v.empty)}
        assert named <= ours[here], (name, named - ours[here])
    from langchain_biohash.vectorstores import FAISS_STATE
    init = inspect.signature(faiss_store.FAISS.__init__).parameters
    required = {p for p, v in init.items() if v.default is v.empty} - {"self"}
    assert required - {"embedding_function"} == set(FAISS_STATE)
    assert set(faiss_store.DistanceStrategy.__members__) == set(DistanceStrategy.__members__)


def test_delete_follows_the_base_contract(emb):
    """True when every id was stored, False when some were not (the rest removed), never an
    exception for an unknown id (langchain's standard tests); None removes all."""
    store = small_store(emb, 10)
    assert store.delete(["unknown"]) is False and len(store) == 10
    assert store.delete(["id1", "unknown"]) is False and len(store) == 9
    assert store.get_by_ids(["id1"]) == []
    assert store.delete(["id2", "id3", "id3"]) is True and len(store) == 7
    assert store.delete() is True and len(store) == 0


class Sentences(Embeddings):
    """Sentence-embedding-like vectors: 384-d, unit norm, in topics, and each topic's
    opposite (cosine near -1: as far apart as vectors get); ``scale`` multiplies them
    (Euclidean distances in the hundreds, as SIFT descriptors have)."""

    def __init__(self, scale=1.0):
        rng = np.random.default_rng(1)
        topics = rng.standard_normal((10, 384))
        x = np.concatenate([topics, -topics])[rng.integers(0, 20, 300)]
        x += 0.3 * rng.standard_normal(x.shape)
        self.table = scale * x / np.linalg.norm(x, axis=1, keepdims=True)

    def embed_documents(self, texts):
        return [self.embed_query(t) for t in texts]

    def embed_query(self, text):
        return self.table[int(text[1:])].tolist()


@pytest.mark.parametrize("metric,scale", [("cosine", 1.0), ("l2", 1.0), ("l2", 400.0)])
@pytest.mark.parametrize("hashed", [False, True])
def test_relevance_scores_are_in_0_1_and_keep_the_order(metric, scale, hashed):
    emb = Sentences(scale)
    store = BioHashVectorStore(emb, metric=metric, train_threshold=100 if hashed else 1000,
                               epochs=0)
    store.add_texts(texts(300))
    assert store.is_hashed == hashed
    with warnings.catch_warnings():
        warnings.simplefilter("error")         # langchain warns about scores outside [0, 1]
        for q in (0, 7, 150):
            found = store.similarity_search_with_score(f"t{q}", k=300)
            rel = store.similarity_search_with_relevance_scores(f"t{q}", k=300)
            scores = [s for _, s in rel]
            assert len(rel) == len(found) and 0 <= min(scores) <= max(scores) <= 1
            assert scores == sorted(scores, reverse=True) and scores[0] > 0.99
            assert [d.id for d, _ in rel] == [d.id for d, _ in found]
            if metric == "cosine":   # the opposite topic is there: cos near -1, score near 0
                assert min(scores) < 0.1
    kept = store.similarity_search_with_relevance_scores("t0", k=300, score_threshold=0.6)
    assert kept and all(s >= 0.6 for _, s in kept)
    near = store.similarity_search_with_score("t0", k=300, score_threshold=0.5 * scale)
    assert near and all(d <= 0.5 * scale for _, d in near)
