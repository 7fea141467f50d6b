"""BioHashVectorStore beyond the standard suite: the training policy, persistence, MMR, filters."""
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
    assert store.index.base_index.hash_length == 8 == default_hash_length(D)
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


def test_failed_save_keeps_previous_file(emb, tmp_path):
    store = BioHashVectorStore(emb)
    store.add_texts(texts(5))
    store.save_local(tmp_path, "kb")
    before = (tmp_path / "kb.arrow").read_bytes()
    store.add_texts(["t6"], metadatas=[{"bad": {1, 2}}])               # a set is not JSON
    with pytest.raises(TypeError):
        store.save_local(tmp_path, "kb")
    assert (tmp_path / "kb.arrow").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb.arrow"]
    assert len(BioHashVectorStore.load_local(tmp_path, emb, "kb")) == 5


def test_load_rejects_other_arrow_files(emb, tmp_path):
    with pa.OSFile(str(tmp_path / "index.arrow"), "wb") as sink:
        with pa.ipc.new_file(sink, pa.schema([("x", pa.int64())])) as w:
            w.write_table(pa.table({"x": [1]}))
    with pytest.raises(ValueError, match="not a langchain-biohash"):
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
    with pytest.raises(ValueError, match="dimensions"):
        store.similarity_search_by_vector([0.0] * (D + 1))
    with pytest.raises(TypeError, match="filter"):
        store.similarity_search("t1", filter="label")
