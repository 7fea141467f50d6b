"""Search throughput from several threads: does the readers-writer lock let searches run in
parallel? Compares BioHashIndex (its lock), the same index behind one exclusive lock (taken
around each call, so one search runs at a time), and a bare faiss IndexBinaryFlat over the
same codes (no lock, no encoding: the ceiling).

    python benchmarks/bench_concurrency.py [--threads 1 2 4] [--runs 5]

Prints queries per second (median of --runs) and ratios, measured side by side in one run.
"""
from __future__ import annotations

import argparse
import threading
import time

import faiss
import numpy as np

from biohash_index import BioHashIndex


def one_at_a_time(search):
    """``search`` behind one exclusive lock: one call at a time, from any number of threads."""
    lock = threading.Lock()

    def locked(q):
        with lock:
            return search(q)
    return locked


def queries_per_second(search, xq, nq, n_threads, seconds):
    """Total queries/s of n_threads threads calling search(batch) on nq-query batches."""
    counts, stop = [0] * n_threads, threading.Event()

    def worker(t):
        rng = np.random.default_rng(t)
        while not stop.is_set():
            search(xq[rng.integers(0, len(xq) - nq):][:nq])
            counts[t] += nq

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--nq", type=int, default=32, help="queries per search call")
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    xb = rng.standard_normal((20000, 64)).astype(np.float32)
    xq = rng.standard_normal((2000, 64)).astype(np.float32)
    index = BioHashIndex(64, 16, epochs=1, task="labels")
    index.train(xb[:5000])
    index.add(xb)
    bare = faiss.IndexBinaryFlat(8 * index.code_size)
    bare.add(index.storage.codes())
    xq_codes = index.sa_encode(xq)

    searches = {
        "ours (readers-writer lock)": lambda q: index.search(q, args.k),
        "ours, one exclusive lock": one_at_a_time(lambda q: index.search(q, args.k)),
    }
    print(f"faiss {faiss.__version__}, omp threads {faiss.omp_get_max_threads()}, "
          f"ntotal {index.ntotal}, {index.code_size} B codes, nq {args.nq} per call, k {args.k}")
    print("| threads | ours q/s | exclusive lock q/s | faiss bare q/s | ours / exclusive "
          "| ours / faiss |")
    print("|---|---|---|---|---|---|")
    for n in args.threads:
        runs = {name: [] for name in [*searches, "faiss"]}
        for _ in range(args.runs):       # interleaved, so load changes hit all alike
            for name, search in searches.items():
                runs[name].append(queries_per_second(search, xq, args.nq, n, args.seconds))
            runs["faiss"].append(queries_per_second(
                lambda q: bare.search(q, args.k), xq_codes, args.nq, n, args.seconds))
        ours, excl, ref = (float(np.median(v)) for v in runs.values())
        print(f"| {n} | {ours:.0f} | {excl:.0f} | {ref:.0f} | {ours / excl:.2f} "
              f"| {ours / ref:.2f} |")


if __name__ == "__main__":
    main()
