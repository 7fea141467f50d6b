"""Latency of every call against the faiss index it replaces (issue 26), one thread.

Index table, at each size: ``BioHashIndex(d, 4 B)`` against ``IndexLSH(d, 8 B)`` (rotation
and trained thresholds, as baselines.py) at B bytes per code, and ``IndexBinaryFlat``
searching the BioHash codes themselves; medians, timed in turns in one process so load
changes hit both sides alike:

- one query: p50 and p99 of ``search(xq[i:i+1], 10)``;
- batch: queries per second of ``search(xq[:500], 10)``;
- save: ``write_index`` to one file (ours fsyncs it), against ``faiss.write_index`` plus
  one ``fsync``;
- load + first search: ``read_index`` then one query;
- first add: ``add`` on an untrained index (it trains), against IndexLSH ``train`` + ``add``.

Store table: one query of the LangChain store (``similarity_search_by_vector``) against
langchain-community's FAISS store, and of the LlamaIndex store against its
``SimpleVectorStore``, on random unit vectors (embeddings given, not computed).

    python benchmarks/bench_latency.py [--sizes 10000,100000] [--million] [--stores 3000,100000]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
import warnings

import faiss
import numpy as np

from biohash_index import BioHashIndex, read_index, write_index
from common import (apply_threads, interleaved_medians as turns, machine, print_table,
                    sift_base, synthetic)

K = 10
BATCH = 500


def lsh(d: int, nbits: int) -> faiss.Index:
    return faiss.IndexLSH(d, nbits, True, True)


def percentiles(fn, queries: np.ndarray, repeat: int) -> tuple[float, float]:
    """p50 and p99 in ms of fn(one query row) over ``repeat`` calls cycling the queries."""
    times = []
    for i in range(repeat):
        q = queries[i % len(queries):i % len(queries) + 1]
        t0 = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50)) * 1e3, float(np.percentile(times, 99)) * 1e3


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def data(n: int, d_synthetic: int = 128) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, xb, xq): siftsmall at 10,000 when present, else synthetic SIFT-like data."""
    if n == 10_000:
        xb = sift_base()
        if xb is not None:
            return "siftsmall", xb, xb[np.random.default_rng(1).choice(len(xb), 1000)] + 1.0
    x = synthetic(n + 1000, d_synthetic)
    return "synthetic", x[:n], x[n:]


def index_rows(n: int, code_bytes: int, repeat: int) -> list[list]:
    name, xb, xq = data(n)
    d = xb.shape[1]
    ours = BioHashIndex(d, 4 * code_bytes, n_threads=1)
    base = lsh(d, 8 * code_bytes)
    ours_add = turns({"ours": lambda: BioHashIndex(d, 4 * code_bytes, n_threads=1).add(xb),
                      "lsh": lambda: (lambda i: (i.train(xb), i.add(xb)))(lsh(d, 8 * code_bytes))},
                     3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours.add(xb)
    base.train(xb)
    base.add(xb)
    flat = faiss.IndexBinaryFlat(8 * ours.storage.code_size)
    flat.add(ours.storage.codes())
    qcodes = np.zeros((len(xq), ours.storage.code_size), np.uint8)
    qcodes[:, :ours.code_size] = ours.sa_encode(xq)
    for q in xq[:20]:                                  # warm every path once
        ours.search(q[None], K), base.search(q[None], K), flat.search(qcodes[:1], K)
    one = {"BioHash": percentiles(lambda q: ours.search(q, K), xq, repeat),
           "IndexLSH": percentiles(lambda q: base.search(q, K), xq, repeat),
           "BinaryFlat": percentiles(lambda q: flat.search(qcodes[:1], K), qcodes, repeat)}
    batch = turns({"BioHash": lambda: ours.search(xq[:BATCH], K),
                   "IndexLSH": lambda: base.search(xq[:BATCH], K),
                   "BinaryFlat": lambda: flat.search(qcodes[:BATCH], K)}, 7)
    tmp = tempfile.mkdtemp()
    ours_path, lsh_path = os.path.join(tmp, "ours.index"), os.path.join(tmp, "lsh.faiss")
    save = turns({"BioHash": lambda: write_index(ours, ours_path),
                  "IndexLSH": lambda: (faiss.write_index(base, lsh_path), fsync_path(lsh_path))},
                 7)
    load = turns({"BioHash": lambda: read_index(ours_path).search(xq[:1], K),
                  "IndexLSH": lambda: faiss.read_index(lsh_path).search(xq[:1], K)},
                 7)
    label = f"{name} {n:,} x {d}, {code_bytes} B"
    rows = [[label, "one query p50 (ms)", one["BioHash"][0], one["IndexLSH"][0],
             one["BioHash"][0] / one["IndexLSH"][0], one["BinaryFlat"][0]],
            [label, "one query p99 (ms)", one["BioHash"][1], one["IndexLSH"][1],
             one["BioHash"][1] / one["IndexLSH"][1], one["BinaryFlat"][1]],
            [label, f"batch of {BATCH} (q/s)", BATCH / batch["BioHash"], BATCH / batch["IndexLSH"],
             batch["BioHash"] / batch["IndexLSH"], BATCH / batch["BinaryFlat"]],
            [label, "save (ms)", 1e3 * save["BioHash"], 1e3 * save["IndexLSH"],
             save["BioHash"] / save["IndexLSH"], "-"],
            [label, "load + first search (ms)", 1e3 * load["BioHash"], 1e3 * load["IndexLSH"],
             load["BioHash"] / load["IndexLSH"], "-"],
            [label, "first add: train + add (ms)", 1e3 * ours_add["ours"], 1e3 * ours_add["lsh"],
             ours_add["ours"] / ours_add["lsh"], "-"]]
    return rows


# ---------------------------------------------------------------------- stores
def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class GivenEmbeddings:
    """A LangChain ``Embeddings`` that never runs: the benchmark passes vectors."""

    def embed_documents(self, texts):
        raise NotImplementedError

    def embed_query(self, text):
        raise NotImplementedError


def langchain_pair(x: np.ndarray):
    """(ours, FAISS store) holding the same passages, or None if a package is missing."""
    try:
        from langchain_biohash import BioHashVectorStore
        from langchain_community.vectorstores import FAISS
    except ImportError as e:
        print(f"LangChain stores skipped ({e})")
        return None
    texts = [f"passage {i}" for i in range(len(x))]
    pairs = list(zip(texts, x.tolist()))
    ours = BioHashVectorStore.from_embeddings(pairs, GivenEmbeddings(), n_threads=1)
    theirs = FAISS.from_embeddings(pairs, GivenEmbeddings())
    return (lambda q: ours.similarity_search_by_vector(q, k=4),
            lambda q: theirs.similarity_search_by_vector(q, k=4))


def llamaindex_pair(x: np.ndarray):
    """(ours, SimpleVectorStore) query callables, or None if a package is missing."""
    try:
        from llama_index.core.schema import TextNode
        from llama_index.core.vector_stores import SimpleVectorStore, VectorStoreQuery
        from llama_index.vector_stores.biohash import BioHashVectorStore
    except ImportError as e:
        print(f"LlamaIndex stores skipped ({e})")
        return None
    nodes = [TextNode(text=f"passage {i}", id_=str(uuid.UUID(int=i)), embedding=v)
             for i, v in enumerate(x.tolist())]
    ours, theirs = BioHashVectorStore(n_threads=1), SimpleVectorStore()
    ours.add(nodes)
    theirs.add(nodes)
    return tuple(lambda q, s=s: s.query(VectorStoreQuery(query_embedding=q, similarity_top_k=4))
                 for s in (ours, theirs))


def store_rows(n: int, d: int, repeat: int) -> list[list]:
    x, xq = unit_rows(n, d, 0), unit_rows(max(5, min(200, 600_000 // n)), d, 1).tolist()
    rows = []
    for what, make in (("LangChain vs FAISS store", langchain_pair),
                       ("LlamaIndex vs SimpleVectorStore", llamaindex_pair)):
        pair = make(x)
        if pair is None:
            continue
        for q in xq[:3]:
            pair[0](q), pair[1](q)
        t = turns({"ours": lambda: [pair[0](q) for q in xq],
                   "theirs": lambda: [pair[1](q) for q in xq]}, 3)
        rows.append([f"{n:,} x {d}", what, 1e3 * t["ours"] / len(xq),
                     1e3 * t["theirs"] / len(xq), t["ours"] / t["theirs"]])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="index sizes (comma-separated)")
    ap.add_argument("--million", action="store_true", help="also 1,000,000 vectors (slow)")
    ap.add_argument("--code-bytes", type=int, default=16, help="B, bytes per code")
    ap.add_argument("--stores", default="3000,100000", help="store sizes ('' for none)")
    ap.add_argument("--store-dim", type=int, default=384)
    ap.add_argument("--repeat", type=int, default=1000, help="single queries timed per size")
    args = ap.parse_args()
    apply_threads(1)
    print(machine())
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([1_000_000] if args.million else [])
    rows = [r for n in sizes for r in index_rows(n, args.code_bytes, args.repeat)]
    print_table(["data", "call", "BioHashIndex", "IndexLSH", "ratio (time, ours / theirs)",
                 "IndexBinaryFlat (same codes)"], rows)
    stores = [int(s) for s in args.stores.split(",") if s]
    rows = [r for n in stores for r in store_rows(n, args.store_dim, args.repeat)]
    if rows:
        print()
        print_table(["passages", "store", "ours (ms / query)", "theirs (ms / query)",
                     "ratio"], rows)


if __name__ == "__main__":
    main()
