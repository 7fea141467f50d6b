"""Where routed storage pays in the stores: ``BioHashStore`` (the LangChain and LlamaIndex
engine) with flat against IVF storage (learned router, learned nprobe), one query per call
as the frameworks search, at growing sizes.

    python benchmarks/bench_store_routing.py [--sizes 2000,10000,50000] [--d 384] [--nq 200]
                                             [--text]

Data: unit-length vectors in Gaussian clusters (``common.synthetic``, n / 100 clusters);
with ``--text``, the text set (MiniLM passages, ``text_embeddings.py``) at its size; recall@10 against the exact cosine top 10; ms/query: median thread CPU
time of one ``search(query, 10)`` (one thread), the two stores timed in turns; IVF at the
learned nprobe and at 4 times it.
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from biohash_index.store import BioHashStore, Record
import text_embeddings
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


def data(args):
    """(n, xb, xq) of each size: unit-length synthetic vectors, or the text set."""
    if args.text:
        xb, xq, _ = text_embeddings.load()
        yield len(xb), xb, xq[:args.nq]
        return
    for n in map(int, args.sizes.split(",")):
        x = synthetic(n + args.nq, args.d, seed=n, n_clusters=max(10, n // 100))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        yield n, x[:n], x[n:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,10000,50000")
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--nq", type=int, default=200)
    ap.add_argument("--text", action="store_true", help="the text set instead")
    args = ap.parse_args(argv)
    apply_threads(1)
    print(machine())
    rows = []
    for n, xb, xq in data(args):
        _, gt = faiss.knn(xq, xb, 10, metric=faiss.METRIC_INNER_PRODUCT)
        stores = {s: filled_store(xb, s) for s in ("flat", "ivf")}
        ivf = stores["ivf"].index.base_index
        learned = ivf.nprobe
        for nprobe in (learned, 4 * learned):    # the default, and more lists for more recall
            ivf.nprobe = min(nprobe, ivf.storage.nlist)
            ms = per_query_ms(stores, xq)
            for s, store in stores.items():
                if s == "flat" and nprobe != learned:
                    continue
                setting = f"nlist={ivf.storage.nlist}, nprobe={ivf.nprobe}" if s == "ivf" else ""
                rows.append([n, s, setting, f"{recall(store, xq, gt):.3f}", f"{ms[s]:.3f}",
                             f"{ms['flat'] / ms[s]:.2f}"])
    print(f"\nBioHashStore search(query, 10), cosine, {'text set' if args.text else 'synthetic'}, "
          f"d={xb.shape[1]}, one thread\n")
    print_table(["n", "storage", "IVF", "recall@10", "ms/query", "speed vs flat"], rows)


if __name__ == "__main__":
    main()
