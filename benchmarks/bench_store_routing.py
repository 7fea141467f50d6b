"""Where routed storage pays in the stores: ``BioHashStore`` (the LangChain and LlamaIndex
engine) with flat against IVF storage (learned router, learned nprobe), one query per call
as the frameworks search, at growing sizes.

    python benchmarks/bench_store_routing.py [--sizes 2000,10000,50000] [--d 384] [--nq 200]

Data: unit-length vectors in Gaussian clusters (``common.synthetic``; the text set where
built: ``--text``); recall@10 against the exact cosine top 10; ms/query: median thread CPU
time of one ``search(query, 10)`` (one thread), the two stores timed in turns.
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from biohash_index.store import BioHashStore, Record
from common import apply_threads, machine, print_table, synthetic


def filled_store(x, storage):
    store = BioHashStore(metric="cosine", storage=storage)
    store.add(x, [Record(str(i), "") for i in range(len(x))])
    return store


def per_query_ms(stores, xq, repeat=3):
    """Median thread CPU time of one search, each store's queries timed in turns."""
    times = {name: [] for name in stores}
    for _ in range(repeat):
        for q in xq:
            for name, store in stores.items():
                t = time.thread_time()
                store.search(q, 10)
                times[name].append(time.thread_time() - t)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def recall(store, xq, gt):
    found = [[int(h.record.id) for h in store.search(q, 10)] for q in xq]
    return float(np.mean([len(set(f) & set(g)) / 10 for f, g in zip(found, gt)]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,10000,50000")
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--nq", type=int, default=200)
    args = ap.parse_args(argv)
    apply_threads(1)
    print(machine())
    rows = []
    for n in map(int, args.sizes.split(",")):
        x = synthetic(n + args.nq, args.d, seed=n, n_clusters=max(10, n // 100))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        xb, xq = x[:n], x[n:]
        _, gt = faiss.knn(xq, xb, 10, metric=faiss.METRIC_INNER_PRODUCT)
        stores = {s: filled_store(xb, s) for s in ("flat", "ivf")}
        ms = per_query_ms(stores, xq)
        ivf = stores["ivf"].index.base_index
        for s, store in stores.items():
            setting = f"nlist={ivf.storage.nlist}, nprobe={ivf.nprobe}" if s == "ivf" else ""
            rows.append([n, s, setting, f"{recall(store, xq, gt):.3f}", f"{ms[s]:.3f}",
                         f"{ms['flat'] / ms[s]:.2f}"])
    print(f"\nBioHashStore search(query, 10), cosine, d={args.d}, one thread\n")
    print_table(["n", "storage", "IVF", "recall@10", "ms/query", "speed vs flat"], rows)


if __name__ == "__main__":
    main()
