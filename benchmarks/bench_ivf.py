"""Recall@10 against queries per second on one thread: BioHash IVF storage (nprobe swept)
against BioHash flat storage, faiss's IndexBinaryIVF holding the same codes, IndexLSH,
IndexIVFPQ and IVF RaBitQ at (about) equal bytes, IndexHNSWFlat for context, and
BioHashIndexRefine (exact re-rank) over the IVF storage (issue 25, "recall against speed").

Sets: the real ones of --sets (bigann10k, siftsmall: 10,000 vectors, 100 queries; ``text``:
23,000 MiniLM paragraph embeddings, ``text200k``: 200,000 MiniLM sentence embeddings, 1,000
queries each, used only if ``text_embeddings.py`` has cached them) and --n SIFT-like
synthetic vectors (``sift_like.py``, 1,000 queries; cached).
Truth: each set's exact top 10 by L2.

Indexes, all trained on the same --train rows of the database (all of it if smaller):
BioHash with ``BioHashIndex(d, 4 * bytes)`` (the default task, "neighbors": 8 * bytes units,
half active, ``bytes``-byte codes, weighted-distance order), flat and
``storage="ivf", nlist = 4 sqrt(n)``; ``faiss.IndexBinaryIVF`` (nlist lists) filled with
BioHash's codes (``sa_encode``), searched in Hamming order with the queries' codes;
``IndexLSH(d, 8 * bytes, rotate, train thresholds)``; ``IndexIVFPQ`` (M bytes, M the divisor
of d nearest to bytes) and ``IndexIVFRaBitQ`` (1 bit per dimension and 8 bytes of factors:
d / 8 + 8 bytes, the fewest it can use) over one k-means quantizer of nlist lists;
``IndexHNSWFlat(d, 16)`` (up to --hnsw-max vectors); ``BioHashIndexRefine`` over
the IVF index with each of --k-factors (k_factor 10: 100 candidates re-ranked by exact L2
from the float vectors).

Speed: queries per second from the CPU time (``time.process_time``) of one batched search of
all the queries, query encoding included, with numba, faiss and BLAS on 1 thread (median of
runs adding up to --min-seconds, at least 2, after the run that measures recall). CPU time
does not count waiting for a core, so the figures hold on a busy machine. Building uses
--build-threads. The summary checks the issue's goals.

    python benchmarks/bench_ivf.py [--sets bigann10k,siftsmall,text,text200k] [--n 1000000]
        [--bytes 32] [--train 100000] [--plot recall_qps.png] [--build-threads 1]
        [--k-factors 10,40]
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

import sift_like
import text_embeddings
from ann_text import pq_m, plot
from common import DATA, apply_threads, machine, not_available

from biohash_index import BioHashIndex, BioHashIndexRefine
from biohash_index.datasets import load_ann
from biohash_index.evaluation import recall_at_k

K = 10
NPROBES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)  # every index, the same grid
EF_SEARCH = (16, 32, 64, 128, 256)
ADD_BLOCK = 50_000
BIOHASH, BIOHASH_IVF, REFINE = "BioHash flat", "BioHash IVF", "BioHashIndexRefine (IVF"
BINARY_IVF, LSH = "IndexBinaryIVF, BioHash codes", "IndexLSH"


class Run:
    """The measured points of one set: rows of the table and curves of the plot."""

    def __init__(self, xq, gt, min_seconds: float):
        self.xq, self.gt, self.min_seconds = xq, gt, min_seconds
        self.points: dict[str, list[tuple[str, float, float, float]]] = {}

    def measure(self, method: str, setting: str, search, nbytes: float) -> None:
        """Recall@10 and queries per second of ``search(xq) -> I (nq, >= 10)``, printed as
        a row of the table at once (a long run keeps what it measured)."""
        apply_threads(1)
        I = search(self.xq)
        times = []
        while len(times) < 2 or sum(times) < self.min_seconds:
            t0 = time.process_time()
            search(self.xq)
            times.append(time.process_time() - t0)
        qps = len(self.xq) / float(np.median(times))
        recall = recall_at_k(I[:, :K], self.gt, K)
        self.points.setdefault(method, []).append((setting, recall, qps, nbytes))
        print(f"| {method} | {setting} | {recall:.3f} | {qps:,.0f} | "
              f"{qps / self.flat_qps():.1f} | {nbytes:g} |", flush=True)

    def flat_qps(self) -> float:
        return self.points[BIOHASH][0][2]

    def curves(self) -> dict[str, list[tuple[float, float]]]:
        return {m: [(r, q) for _, r, q, _ in p] for m, p in self.points.items()}


def add_blocks(index, xb) -> None:
    """``index.add`` block by block, as a large collection is added (bounded memory)."""
    for s in range(0, len(xb), ADD_BLOCK):
        index.add(xb[s:s + ADD_BLOCK])


def timed_build(fn, threads: int) -> float:
    apply_threads(threads)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_set(name: str, xb, xq, gt, args) -> Run:
    n, d = xb.shape
    nlist = int(round(4 * np.sqrt(n)))
    rng = np.random.default_rng(0)
    xt = xb if n <= args.train else xb[np.sort(rng.choice(n, args.train, replace=False))]
    run = Run(xq, gt, args.min_seconds)
    print(f"\n## {name}: n={n:,}, d={d}, {len(xq)} queries, {len(xt):,} training vectors, "
          f"nlist={nlist}, {args.bytes}-byte codes", flush=True)
    bt = args.build_threads
    builds = {}
    print("| method | setting | recall@10 | q/s | speed-up vs BioHash flat | bytes/vector |\n"
          "|---|---|---|---|---|---|", flush=True)

    flat = BioHashIndex(d, 4 * args.bytes)
    builds[BIOHASH] = timed_build(lambda: (flat.train(xt), add_blocks(flat, xb)), bt)
    cs = flat.code_size
    run.measure(BIOHASH, "exhaustive", lambda q: flat.search(q, K)[1], cs)

    refine = BioHashIndexRefine(BioHashIndex(d, 4 * args.bytes, storage="ivf", nlist=nlist))
    builds[f"{BIOHASH_IVF} (+ float vectors for refine)"] = timed_build(
        lambda: (refine.train(xt), add_blocks(refine, xb)), bt)
    ivf = refine.base_index
    probes = [p for p in NPROBES if p <= nlist]
    for p in probes:
        run.measure(BIOHASH_IVF, f"nprobe={p}",
                    lambda q: ivf.search(q, K, params={"nprobe": p})[1], cs)
    for kf in args.k_factors:
        refine.k_factor = kf
        for p in probes:
            run.measure(f"{REFINE}, k_factor {kf:g})", f"nprobe={p}, k_factor={kf:g}",
                        lambda q: refine.search(q, K, params={"nprobe": p})[1], cs + 4 * d)
    del refine, ivf

    nbits = 8 * cs
    binary = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(nbits), nbits, nlist)
    builds[BINARY_IVF] = timed_build(
        lambda: (binary.train(flat.sa_encode(xt)), binary.add(flat.sa_encode(xb))), bt)
    for p in probes:
        binary.nprobe = p
        run.measure(BINARY_IVF, f"nprobe={p}",
                    lambda q: binary.search(flat.sa_encode(q), K)[1], cs)
    del binary

    lsh = faiss.IndexLSH(d, nbits, True, True)
    builds[LSH] = timed_build(lambda: (lsh.train(xt), lsh.add(xb)), bt)
    run.measure(LSH, f"nbits={nbits}, exhaustive", lambda q: lsh.search(q, K)[1], lsh.code_size)
    del lsh

    m = pq_m(d, cs)
    quantizer = faiss.IndexFlatL2(d)   # one k-means for both, run by the first's train
    for label, index in ((f"IndexIVFPQ (M={m})", faiss.IndexIVFPQ(quantizer, d, nlist, m, 8)),
                         ("IndexIVFRaBitQ (1 bit)", faiss.IndexIVFRaBitQ(quantizer, d, nlist))):
        builds[label] = timed_build(lambda: (index.train(xt), index.add(xb)), bt)
        for p in probes:
            index.nprobe = p
            run.measure(label, f"nprobe={p}", lambda q: index.search(q, K)[1],
                        index.code_size)
        del index

    if n <= args.hnsw_max:
        hnsw = faiss.IndexHNSWFlat(d, 16)
        builds["IndexHNSWFlat (M=16)"] = timed_build(lambda: hnsw.add(xb), bt)
        for ef in EF_SEARCH:
            hnsw.hnsw.efSearch = ef
            run.measure("IndexHNSWFlat (M=16)", f"efSearch={ef}",
                        lambda q: hnsw.search(q, K)[1], 4 * d + 2 * 16 * 4)
        del hnsw
    else:
        print(f"(IndexHNSWFlat skipped: n > --hnsw-max {args.hnsw_max:,})")

    print("build seconds (train + add, " f"{bt} threads): "
          + ", ".join(f"{m} {s:.0f}" for m, s in builds.items()))
    summary(run, n)
    return run


def dominated(points, better) -> tuple[int, list[str]]:
    """How many of ``points`` some point of ``better`` matches or beats in both recall and
    speed; the settings of the others."""
    missed = [s for s, r, q, _ in points
              if not any(rb >= r and qb >= q for _, rb, qb, _ in better)]
    return len(points) - len(missed), missed


def best_speedup(points, recall: float, flat_qps: float) -> tuple[float, str]:
    """The largest speed-up over flat among points with recall >= ``recall``."""
    ok = [(q / flat_qps, s) for s, r, q, _ in points if r >= recall]
    return max(ok) if ok else (0.0, "none")


def summary(run: Run, n: int) -> None:
    """The issue's goals, checked on this set's points."""
    pts, flat_recall, flat = run.points, run.points[BIOHASH][0][1], run.flat_qps()
    print(f"\nGoals ({n:,} vectors):")
    for rival in (BINARY_IVF, LSH):
        got, missed = dominated(pts[rival], pts[BIOHASH_IVF])
        print(f"- BioHash IVF at least as good in recall and speed as {rival}: {got} of "
              f"{len(pts[rival])} points{'' if not missed else f' (not: {missed})'}: "
              f"{'met' if not missed else 'NOT met'}")
    target = 20 if n >= 1_000_000 else 4
    speedup, setting = best_speedup(pts[BIOHASH_IVF], 0.95 * flat_recall, flat)
    print(f"- >= 0.95 of flat recall ({0.95 * flat_recall:.3f}) at >= {target}x flat's q/s: "
          f"best {speedup:.1f}x ({setting}): {'met' if speedup >= target else 'NOT met'}")
    speedup, setting = best_speedup([p for m in pts if m.startswith(REFINE) for p in pts[m]],
                                    0.9, flat)
    where = "" if n >= 1_000_000 else " (the goal is at 1M)"
    print(f"- refine: recall@10 >= 0.9 at >= 20x flat's q/s: best {speedup:.1f}x ({setting})"
          f": {'met' if speedup >= 20 else 'NOT met'}{where}")
    for rival in ("IndexIVFPQ", "IndexIVFRaBitQ"):
        key = next(m for m in pts if m.startswith(rival))
        got, missed = dominated(pts[key], pts[BIOHASH_IVF])
        print(f"- {key} points matched or beaten by BioHash IVF: {got} of {len(pts[key])}"
              f"{'' if not missed else f'; it leads at {missed}'}")


def load_real(name: str):
    """(xb, xq, gt) of a real set, or None with a message."""
    if name in text_embeddings.SETS:
        loaded = text_embeddings.load_cached(name)
        if loaded is None:
            return None
        xb, xq, gt = loaded   # unit vectors: top 10 by cosine = by L2
    else:
        if not (DATA / name).exists():
            print(f"\n{name}: skipped ({not_available(DATA / name)})")
            return None
        xb, xq, gt = load_ann(DATA / name)
    return (np.ascontiguousarray(xb, np.float32), np.ascontiguousarray(xq, np.float32),
            gt[:, :K])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="bigann10k,siftsmall,text",
                    help="real sets, comma-separated ('' for none)")
    ap.add_argument("--n", type=int, default=1_000_000, help="SIFT-like vectors (0: none)")
    ap.add_argument("--nq", type=int, default=1000, help="SIFT-like queries")
    ap.add_argument("--bytes", type=int, default=32, help="code bytes of BioHash and its rivals")
    ap.add_argument("--train", type=int, default=100_000, help="training rows (at most)")
    ap.add_argument("--min-seconds", type=float, default=0.5,
                    help="CPU seconds of timed searches per point (at least 2 searches)")
    ap.add_argument("--build-threads", type=int, default=1,
                    help="threads for building (more than the idle cores: OpenMP's waits "
                         "slow faiss down)")
    ap.add_argument("--k-factors", default="10,40",
                    help="k_factor values of BioHashIndexRefine (comma-separated)")
    ap.add_argument("--hnsw-max", type=int, default=10**9,
                    help="build IndexHNSWFlat only up to this many vectors (its build is slow)")
    ap.add_argument("--plot", default=None, help="PNG file of the recall / q/s picture")
    args = ap.parse_args(argv)
    args.k_factors = [float(f) for f in args.k_factors.split(",")]
    apply_threads(1)
    print(machine())
    panels = {}
    for name in filter(None, args.sets.split(",")):
        data = load_real(name)
        if data is not None:
            panels[name] = run_set(name, *data, args).curves()
    if args.n:
        xb, xq, gt = sift_like.load(args.n, args.nq)
        name = f"SIFT-like {args.n:,}"
        panels[name] = run_set(name, xb, xq, gt[:, :K], args).curves()
    if args.plot and panels:
        print(f"\nplot written to {args.plot}" if plot(args.plot, panels)
              else "\nno plot: matplotlib is not installed")


if __name__ == "__main__":
    main()
