"""Recall@10 vs queries per second: BioHash (IVF, flat, inverted) vs faiss IndexLSH and
IndexHNSWFlat, on siftsmall and on a synthetic set of n vectors.

    python benchmarks/bench_ivf.py [--n 1000000] [--nq 500] [--threads 1]

BioHash codes use k = 16 active units of m = 320 (activity 0.05, 40 bytes). Recall@10 is
against the exact L2 top 10; QPS is the number of queries over the median wall time of
one batched ``search`` of all of them (query encoding included); bytes/vector is the size of
the serialised index over n.
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from biohash_index import BioHashIndex
from biohash_index.datasets import read_fvecs, read_ivecs
from biohash_index.evaluation import recall_at_k
from common import (DATA, add_threads_option, apply_threads, machine, median_time,
                    not_available, print_table, synthetic)


def row(name, setting, index_search, xq, gt, n, nbytes, repeat):
    _, I = index_search(xq)
    t = median_time(lambda: index_search(xq), repeat)
    return [name, setting, f"{recall_at_k(I, gt, 10):.3f}", round(len(xq) / t),
            round(nbytes / n, 1)]


def biohash_rows(xt, xb, xq, gt, nlist, repeat):
    d, n = xb.shape[1], len(xb)
    rows = []
    for storage in ("flat", "inverted", "ivf"):
        t0 = time.perf_counter()
        index = BioHashIndex(d, 16, n_hidden=320, epochs=20, storage=storage, nlist=nlist,
                             task="labels")
        index.train(xt)
        for s in range(0, n, 100_000):
            index.add(xb[s:s + 100_000])
        build = time.perf_counter() - t0
        nbytes = len(faiss.serialize_index_binary(index.storage.index))
        name = f"BioHash {storage} (build {build:.0f} s)"
        probes = [1, 2, 4, 8, 16, 32, 64] if storage == "ivf" else [None]
        for nprobe in probes:
            if nprobe is not None:
                if nprobe > nlist:
                    break
                index.nprobe = nprobe
            rows.append(row(name, f"nprobe={nprobe}" if nprobe else "exhaustive",
                            lambda q: index.search(q, 10), xq, gt, n, nbytes, repeat))
    return rows


def faiss_rows(xt, xb, xq, gt, repeat):
    d, n = xb.shape[1], len(xb)
    rows = []
    for nbits in (320, 1024):
        t0 = time.perf_counter()
        lsh = faiss.IndexLSH(d, nbits, True, True)
        lsh.train(xt)
        lsh.add(xb)
        name = f"IndexLSH {nbits} bits (build {time.perf_counter() - t0:.0f} s)"
        rows.append(row(name, "exhaustive", lambda q: lsh.search(q, 10), xq, gt, n,
                        len(faiss.serialize_index(lsh)), repeat))
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, 16)
    hnsw.hnsw.efConstruction = 40
    hnsw.add(xb)
    name = f"IndexHNSWFlat M=16 (build {time.perf_counter() - t0:.0f} s)"
    nbytes = len(faiss.serialize_index(hnsw))
    for ef in (16, 32, 64, 128, 256):
        hnsw.hnsw.efSearch = ef
        rows.append(row(name, f"efSearch={ef}", lambda q: hnsw.search(q, 10), xq, gt, n,
                        nbytes, repeat))
    return rows


def exact_top10(xb, xq):
    flat = faiss.IndexFlatL2(xb.shape[1])
    flat.add(xb)
    return flat.search(xq, 10)[1]


def run(title, xt, xb, xq, gt, nlist, repeat):
    print(f"\n{title}: n={len(xb)}, d={xb.shape[1]}, {len(xq)} queries, {len(xt)} training "
          f"vectors, IVF nlist={nlist}")
    rows = biohash_rows(xt, xb, xq, gt, nlist, repeat) + faiss_rows(xt, xb, xq, gt, repeat)
    print_table(["method", "setting", "recall@10", "QPS", "bytes/vector"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--nq", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-sift", action="store_true")
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args.threads)
    print(machine())
    sift = DATA / "siftsmall"
    if not args.skip_sift and sift.exists():
        xb = read_fvecs(sift / "siftsmall_base.fvecs")
        xq = read_fvecs(sift / "siftsmall_query.fvecs")
        gt = read_ivecs(sift / "siftsmall_groundtruth.ivecs")
        run("siftsmall", xb, xb, xq, gt, 64, args.repeat)
    elif not args.skip_sift:
        print(f"siftsmall: skipped ({not_available(sift)})")
    x = synthetic(args.n + args.nq, 128, seed=1)
    xb, xq = x[:args.n], x[args.n:]
    del x
    rng = np.random.default_rng(2)
    xt = xb[rng.choice(args.n, min(args.n, 50_000), replace=False)]
    run("synthetic Gaussian clusters", xt, xb, xq, exact_top10(xb, xq),
        int(4 * np.sqrt(args.n)) // 64 * 64 or 64, args.repeat)


if __name__ == "__main__":
    main()
