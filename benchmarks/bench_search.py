"""Search on stored codes: our storages vs a bare faiss ``IndexBinaryFlat``.

    python benchmarks/bench_search.py [--n 1000000] [--nq 200] [--repeat 5]

Three tables, all on random sparse codes (k of m bits set, units chosen uniformly):
1. wrapper overhead: ``FlatCodeStorage.search`` (IndexBinaryIDMap over IndexBinaryFlat)
   vs ``IndexBinaryFlat.search`` over the same codes;
2. code size: faiss flat search time per stored byte for several code sizes, to see which
   sizes faiss's Hamming kernels favour (padding m up to one of them pays only if the
   padded search is faster than the unpadded one);
3. inverted lists: ``InvertedCodeStorage.search`` vs the bare faiss flat search (same
   results, same order), over activity k/m and n;
4. asymmetric scoring (``task="neighbors"``, the default): ``BioHashIndex.search`` of
   synthetic d=128 vectors (Hamming shortlist re-ranked by weighted Hamming distance),
   against the same index searched in Hamming order and against a bare ``IndexBinaryFlat``
   search of the same codes with the query codes given (so the last ratio includes the
   queries' encoding).
"""
from __future__ import annotations

import argparse

import faiss
import numpy as np

from biohash_index import BioHashIndex
from biohash_index._storage import FlatCodeStorage, InvertedCodeStorage
from common import (add_threads_option, apply_threads, interleaved_medians, machine,
                    print_table, synthetic)


def sparse_codes(n, m, k, seed, block=100_000):
    """uint8 (n, ceil(m / 8)) codes with k of the first m bits set, units uniform."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, (m + 7) // 8), np.uint8)
    for s in range(0, n, block):
        b = min(block, n - s)
        units = np.argpartition(rng.random((b, m), np.float32), k, axis=1)[:, :k]
        bits = np.zeros((b, 8 * out.shape[1]), np.uint8)
        np.put_along_axis(bits, units, 1, axis=1)
        out[s:s + b] = np.packbits(bits, axis=1, bitorder="little")
    return out


def bare_flat(xb):
    index = faiss.IndexBinaryFlat(8 * xb.shape[1])
    index.add(xb)
    return index


def overhead_table(n, nq, repeat):
    rows = []
    for m, k in [(320, 16), (640, 32), (512, 16)]:
        xb, xq = sparse_codes(n, m, k, 0), sparse_codes(nq, m, k, 1)
        bare = bare_flat(xb)
        ours = FlatCodeStorage(8 * xb.shape[1])
        ours.add(xb, np.arange(n, dtype=np.int64))
        for K in (10, 100):
            t = interleaved_medians({"ours": lambda: ours.search(xq, K),
                                     "faiss": lambda: bare.search(xq, K)}, repeat)
            rows.append([n, m, xb.shape[1], K, 1e3 * t["ours"], 1e3 * t["faiss"],
                         t["ours"] / t["faiss"]])
    print(f"\n1. flat storage vs bare IndexBinaryFlat, {nq} queries (ms)")
    print_table(["n", "m", "bytes", "k nn", "ours ms", "faiss ms", "ours/faiss"], rows)


def code_size_table(n, nq, repeat):
    rows = []
    sizes = [32, 40, 48, 56, 64, 80, 96, 128, 160]
    fns, dbs = {}, {}
    for cs in sizes:
        xb, xq = sparse_codes(n, 8 * cs, 16, 0), sparse_codes(nq, 8 * cs, 16, 1)
        dbs[cs] = bare_flat(xb)
        fns[cs] = (lambda idx, q: lambda: idx.search(q, 10))(dbs[cs], xq)
    t = interleaved_medians(fns, repeat)
    for cs in sizes:
        rows.append([cs, 1e3 * t[cs], 1e12 * t[cs] / (n * nq * cs)])
    print(f"\n2. faiss IndexBinaryFlat search time by code size, n={n}, {nq} queries, k nn 10")
    print_table(["code bytes", "ms", "ps per query per stored byte"], rows)


def inverted_table(ns, nq, repeat):
    rows = []
    for n in ns:
        for m, k in [(160, 8), (320, 16), (640, 16), (1280, 16), (640, 32), (1280, 64)]:
            xb, xq = sparse_codes(n, m, k, 0), sparse_codes(nq, m, k, 1)
            bare = bare_flat(xb)
            inv = InvertedCodeStorage(8 * xb.shape[1])
            inv.add(xb, np.arange(n, dtype=np.int64))
            inv.search(xq[:1], 10)  # builds the posting lists outside the timing
            same = all(np.array_equal(a, b) for a, b in zip(inv.search(xq, 10),
                                                            bare.search(xq, 10)))
            t = interleaved_medians({"inverted": lambda: inv.search(xq, 10),
                                     "faiss": lambda: bare.search(xq, 10)}, repeat)
            rows.append([n, m, k, f"{k / m:.3f}", round(n * k * k / m), 1e3 * t["inverted"],
                         1e3 * t["faiss"], t["inverted"] / t["faiss"], same])
    print(f"\n3. inverted lists vs bare IndexBinaryFlat, {nq} queries, k nn 10 (ms)")
    print_table(["n", "m", "k", "activity", "postings read / query", "inverted ms",
                 "faiss flat ms", "inverted/faiss", "same results"], rows)


def asymmetric_table(n, nq, repeat, d=128):
    rows = []
    xb, xq = synthetic(n, d, 0), synthetic(nq, d, 1)
    for hash_length in (32, 128):
        index = BioHashIndex(d, hash_length)
        index.add(xb)
        # the same model (training is seeded), codes and ids, ranked by Hamming distance
        hamming = BioHashIndex.from_params(index.params.replace(scoring="hamming"))
        hamming.add(xb)
        bare = bare_flat(index.storage.code_view())
        cq = index.sa_encode(xq)
        assert np.array_equal(hamming.sa_encode(xq), cq)
        for K in (10, 100):
            t = interleaved_medians({"asym": lambda: index.search(xq, K),
                                     "hamming": lambda: hamming.search(xq, K),
                                     "faiss": lambda: bare.search(cq, K)}, repeat)
            rows.append([n, index.n_hidden, index.code_size, K, 1e3 * t["asym"],
                         1e3 * t["hamming"], 1e3 * t["faiss"], t["asym"] / t["hamming"],
                         t["asym"] / t["faiss"]])
    print(f"\n4. asymmetric scoring (default) vs Hamming order vs bare IndexBinaryFlat, "
          f"{nq} queries of d={d} (ms)")
    print_table(["n", "m", "bytes", "k nn", "asymmetric ms", "hamming ms", "faiss ms",
                 "asym/hamming", "asym/faiss"], rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--nq", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tables", default="1,2,3,4", help="which tables to print")
    add_threads_option(ap)
    args = ap.parse_args()
    apply_threads(args.threads)
    print(machine())
    print(f"times are medians of {args.repeat} runs")
    tables = set(args.tables.split(","))
    if "1" in tables:
        overhead_table(args.n, args.nq, args.repeat)
    if "2" in tables:
        code_size_table(args.n // 4, args.nq, args.repeat)
    if "3" in tables:
        inverted_table(sorted({args.n // 10, args.n}), args.nq, args.repeat)
    if "4" in tables:
        asymmetric_table(args.n, args.nq, args.repeat)


if __name__ == "__main__":
    main()
