"""The LlamaIndex BioHashVectorStore: nodes, queries, filters, files, and a real
VectorStoreIndex round trip with a deterministic embedding (no network, no LLM)."""
import zlib

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.vector_stores.biohash",
                    reason="install integrations/llamaindex")

from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core import load_index_from_storage  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition, FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQuery,
    VectorStoreQueryMode)
from llama_index.core.vector_stores.utils import build_metadata_filter_fn  # noqa: E402

from biohash_index import BioHashFormatError  # noqa: E402
from llama_index.vector_stores.biohash import BioHashVectorStore  # noqa: E402

D = 64
TOPICS = ["ocean ship harbour sail", "forest tree leaf bark", "engine piston fuel gear",
          "violin cello orchestra bow", "bread flour oven yeast"]


class WordHashEmbedding(BaseEmbedding):
    """Deterministic bag of words: each word adds 1 at a crc32-chosen dimension."""

    def _embed(self, text: str) -> list[float]:
        v = np.zeros(D)
        for word in text.lower().split():
            v[zlib.crc32(word.strip(".,").encode()) % D] += 1.0
        return (v + 1e-3).tolist()

    def _get_query_embedding(self, query):
        return self._embed(query)

    async def _aget_query_embedding(self, query):
        return self._embed(query)

    def _get_text_embedding(self, text):
        return self._embed(text)


def nodes(n=60, seed=0):
    """n TextNodes in 5 clusters, 3 nodes per source document, with metadata."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((5, 16)) * 3
    out = []
    for i in range(n):
        node = TextNode(id_=f"n{i}", text=f"text {i}", embedding=(
            centers[i % 5] + rng.standard_normal(16)).tolist(),
            metadata={"topic": i % 5, "year": 2000 + i, "tags": ["a", "b"] if i % 2 else ["c"],
                      "title": f"Title {i}"})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc{i // 3}")
        out.append(node)
    return out


def query(node, k=5, **kw):
    return VectorStoreQuery(query_embedding=node.embedding, similarity_top_k=k, **kw)


def exact(all_nodes, q, k, keep=lambda n: True):
    x = np.array([n.embedding for n in all_nodes])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    order = np.argsort(-(x @ (np.array(q) / np.linalg.norm(q))), kind="stable")
    return [all_nodes[i].node_id for i in order if keep(all_nodes[i])][:k]


@pytest.fixture(autouse=True)
def no_llm():
    llm = Settings._llm
    Settings.llm = MockLLM()          # nothing here may reach a real LLM or the network
    yield
    Settings._llm = llm


@pytest.mark.parametrize("threshold", [1000, 30])
def test_add_query_get_delete(threshold):
    ns = nodes()
    store = BioHashVectorStore(train_threshold=threshold, epochs=5)
    assert store.add(ns) == [n.node_id for n in ns]
    assert store.is_hashed == (threshold == 30) and len(store.client) == 60
    res = store.query(query(ns[7], 5))
    assert res.ids[0] == "n7" and res.similarities[0] == pytest.approx(1.0, abs=1e-5)
    assert res.similarities == sorted(res.similarities, reverse=True)
    if threshold == 1000:
        assert res.ids == exact(ns, ns[7].embedding, 5)
    got = res.nodes[0]
    assert (got.node_id, got.text, got.metadata, got.ref_doc_id) == (
        "n7", "text 7", ns[7].metadata, "doc2")
    assert [n.node_id for n in store.get_nodes(["n3", "zz", "n1"])] == ["n3", "n1"]
    store.delete("doc2")                                      # n6, n7, n8
    assert len(store.client) == 57 and "n7" not in store.query(query(ns[7], 10)).ids
    store.delete_nodes(["n0", "n1"])
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="topic", value=4)]))
    left = store.get_nodes()
    assert len(left) == 57 - 2 - 12 and all(n.metadata["topic"] != 4 for n in left)
    with pytest.raises(ValueError, match="node_ids or filters"):
        store.delete_nodes()
    store.clear()
    assert len(store.client) == 0 and store.query(query(ns[0])).ids == []


def test_query_by_node_ids_and_doc_ids():
    ns = nodes()
    store = BioHashVectorStore()
    store.add(ns)
    among = ["n3", "n40", "n12", "n55"]
    res = store.query(query(ns[40], 10, node_ids=among))
    assert res.ids == exact(ns, ns[40].embedding, 10, lambda n: n.node_id in among)
    assert len(store.query(query(ns[0], 3, node_ids=[])).ids) == 3     # [] restricts nothing
    res = store.query(query(ns[0], 10, doc_ids=["doc5", "doc9"]))
    assert sorted(res.ids) == ["n15", "n16", "n17", "n27", "n28", "n29"]


F = MetadataFilter
FLAT_FILTERS = [
    [F(key="topic", value=2)],
    [F(key="topic", value=2, operator=FilterOperator.NE)],
    [F(key="year", value=2030, operator=FilterOperator.GT)],
    [F(key="year", value=2030, operator=FilterOperator.GTE),
     F(key="year", value=2040, operator=FilterOperator.LT)],
    [F(key="year", value=2010, operator=FilterOperator.LTE)],
    [F(key="topic", value=[1, 3], operator=FilterOperator.IN)],
    [F(key="topic", value=[1, 3], operator=FilterOperator.NIN)],
    [F(key="tags", value="a", operator=FilterOperator.CONTAINS)],
    [F(key="tags", value=["c", "x"], operator=FilterOperator.ANY)],
    [F(key="tags", value=["a", "b"], operator=FilterOperator.ALL)],
    [F(key="title", value="tle 1", operator=FilterOperator.TEXT_MATCH)],
    [F(key="title", value="TITLE 2", operator=FilterOperator.TEXT_MATCH_INSENSITIVE)],
    [F(key="title", value=["tle 1", "e 5"], operator=FilterOperator.ANY)],   # substrings
    [F(key="title", value=["Title", "3"], operator=FilterOperator.ALL)],
    [F(key="title", value="itle 7", operator=FilterOperator.CONTAINS)],
    [F(key="missing", value=None, operator=FilterOperator.IS_EMPTY)],
]


@pytest.mark.parametrize("flat", FLAT_FILTERS)
@pytest.mark.parametrize("condition", [FilterCondition.AND, FilterCondition.OR,
                                       FilterCondition.NOT])
def test_filters_agree_with_llamaindex_reference(flat, condition):
    ns = nodes()
    store = BioHashVectorStore(train_threshold=30, epochs=3)
    store.add(ns)
    filters = MetadataFilters(filters=flat, condition=condition)
    keep = build_metadata_filter_fn(lambda i: ns[int(i[1:])].metadata, filters)
    want = [n.node_id for n in ns if keep(n.node_id)]
    assert sorted(n.node_id for n in store.get_nodes(filters=filters)) == sorted(want)
    res = store.query(query(ns[0], 60, filters=filters))
    assert sorted(res.ids) == sorted(want)
    top = store.query(query(ns[0], 3, filters=filters), fetch_k=3)        # fetches more
    assert len(top.ids) == min(3, len(want)) and set(top.ids) <= set(want)


def test_nested_filters_and_bad_queries():
    ns = nodes()
    store = BioHashVectorStore()
    store.add(ns)
    filters = MetadataFilters(filters=[
        F(key="topic", value=1),
        MetadataFilters(filters=[F(key="year", value=2050, operator=FilterOperator.GTE),
                                 F(key="year", value=2010, operator=FilterOperator.LT)],
                        condition=FilterCondition.OR)])
    got = sorted(n.node_id for n in store.get_nodes(filters=filters))
    assert got == sorted(n.node_id for n in ns if n.metadata["topic"] == 1 and not (
        2010 <= n.metadata["year"] < 2050))
    with pytest.raises(ValueError, match="query_embedding"):
        store.query(VectorStoreQuery(query_str="text", similarity_top_k=2))
    with pytest.raises(ValueError, match="mode"):
        store.query(query(ns[0], mode=VectorStoreQueryMode.SPARSE))
    with pytest.raises(ValueError, match="k must be >= 1"):
        store.query(query(ns[0], 0))


@pytest.mark.parametrize("bad", [
    lambda ns: ns[:5] + [TextNode(id_="noemb", text="x")] + ns[5:],
    lambda ns: ns[:5] + [TextNode(id_="set", text="x", embedding=ns[0].embedding,
                                  metadata={"s": {1, 2}})],
    lambda ns: ns[:5] + [TextNode(id_="dim", text="x", embedding=[1.0, 2.0])],
    lambda ns: ns[:3] + ["not a node"],
])
def test_failed_add_leaves_store_unchanged(bad):
    ns = nodes()
    store = BioHashVectorStore(train_threshold=30, epochs=3)
    store.add(ns[:40])
    before = store.client.to_bytes()
    with pytest.raises((TypeError, ValueError)):
        store.add(bad(nodes(seed=1)))
    assert store.client.to_bytes() == before


def test_l2_similarities_and_upsert():
    ns = nodes(10)
    store = BioHashVectorStore(metric="l2")
    store.add(ns)
    res = store.query(query(ns[2], 3))
    d = np.linalg.norm(np.array([ns[int(i[1:])].embedding for i in res.ids]) - ns[2].embedding,
                       axis=1)
    np.testing.assert_allclose(res.similarities, 1 / (1 + d), rtol=1e-5)
    store.add([TextNode(id_="n2", text="replaced", embedding=ns[2].embedding)])
    assert len(store.client) == 10 and store.get_nodes(["n2"])[0].text == "replaced"


def test_persist_round_trip_is_arrow(tmp_path):
    ns = nodes()
    store = BioHashVectorStore(train_threshold=30, epochs=3, seed=2)
    store.add(ns)
    path = tmp_path / "sub" / "vector_store.json"
    store.persist(str(path))
    arrow = tmp_path / "sub" / "vector_store.arrow"
    assert pa.ipc.open_file(str(arrow)).read_all().num_rows == 60         # plain Arrow
    assert "from_persist_dir" in path.read_text()                         # the note
    for where in (path, arrow):
        loaded = BioHashVectorStore.from_persist_path(str(where))
        assert loaded.is_hashed
        for i in (0, 31):
            a, b = loaded.query(query(ns[i])), store.query(query(ns[i]))
            assert (a.ids, a.similarities) == (b.ids, b.similarities)
            assert [n.to_dict() for n in a.nodes] == [n.to_dict() for n in b.nodes]
    arrow.write_bytes(arrow.read_bytes()[:200])
    with pytest.raises(BioHashFormatError):
        BioHashVectorStore.from_persist_path(str(path))


async def test_async_variants():
    ns = nodes()
    store = BioHashVectorStore()
    assert await store.async_add(ns) == [n.node_id for n in ns]
    res = await store.aquery(query(ns[4], 3))
    assert res.ids[0] == "n4"
    await store.adelete("doc1")
    await store.adelete_nodes(["n0"])
    assert {n.node_id for n in await store.aget_nodes(["n0", "n3", "n9"])} == {"n9"}
    await store.aclear()
    assert len(store.client) == 0


def corpus():
    return [Document(text=f"{TOPICS[i % 5]} number {i}", doc_id=f"d{i}",
                     metadata={"topic": i % 5}) for i in range(40)]


def test_vector_store_index_round_trip(tmp_path):
    emb = WordHashEmbedding()
    store = BioHashVectorStore(train_threshold=30, epochs=5, seed=0)
    ctx = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex.from_documents(corpus(), storage_context=ctx, embed_model=emb)
    assert store.is_hashed and len(store.client) == 40
    hits = index.as_retriever(similarity_top_k=4).retrieve("cello and violin")
    assert len(hits) == 4 and all("violin" in h.node.get_content() for h in hits)
    assert hits[0].score >= hits[-1].score
    only = index.as_retriever(similarity_top_k=3, filters=MetadataFilters(
        filters=[F(key="topic", value=2)])).retrieve("cello and violin")
    assert len(only) == 3 and all(h.node.metadata["topic"] == 2 for h in only)

    index.delete_ref_doc("d3")
    index.insert(Document(text="violin violin bow", doc_id="new"))
    hits = index.as_retriever(similarity_top_k=8).retrieve("violin bow")
    assert "d3" not in {h.node.ref_doc_id for h in hits} and hits[0].node.ref_doc_id == "new"

    ctx.persist(persist_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"BioHashVectorStore.*load it with StorageContext"
                                         r"\.from_defaults\(vector_store=BioHashVectorStore"
                                         r"\.from_persist_dir\("):
        load_index_from_storage(StorageContext.from_defaults(persist_dir=str(tmp_path)),
                                embed_model=emb)      # the reload of LlamaIndex's own store
    want = [(h.node.node_id, h.score) for h in hits]
    assert reloaded(tmp_path, emb, "violin bow") == want
    # a folder persisted before the Arrow file had a name of its own: Arrow under .json
    (tmp_path / "default__vector_store.arrow").replace(tmp_path / "default__vector_store.json")
    assert reloaded(tmp_path, emb, "violin bow") == want


def reloaded(persist_dir, emb, question):
    """(node id, score) of a retrieval from the index reloaded as the README says."""
    ctx = StorageContext.from_defaults(
        vector_store=BioHashVectorStore.from_persist_dir(str(persist_dir)),
        persist_dir=str(persist_dir))
    index = load_index_from_storage(ctx, embed_model=emb)
    return [(h.node.node_id, h.score)
            for h in index.as_retriever(similarity_top_k=8).retrieve(question)]


def test_reads_a_langchain_written_store(tmp_path):
    from biohash_index.store import BioHashStore, Record
    engine = BioHashStore()
    engine.add([[1.0, 0.0], [0.0, 1.0]], [Record("a", "first", {"k": 1}), Record("b", "second")])
    engine.save(tmp_path / "s.arrow")
    store = BioHashVectorStore.from_persist_path(str(tmp_path / "s.arrow"))
    res = store.query(VectorStoreQuery(query_embedding=[1.0, 0.1], similarity_top_k=1))
    assert (res.ids, res.nodes[0].text, res.nodes[0].metadata) == (["a"], "first", {"k": 1})
