"""Nearest-neighbour quality: BioHashIndex against faiss on sentence embeddings and on the
shared ANN sets (issue 18's tables and the ann-benchmarks picture, in one run).

Run from the repository root:

    python benchmarks/ann_text.py [--sets text,siftsmall,bigann10k,fmnistsmall]
        [--ns 16,32,64,128,256] [--plot-ns 32,128] [--candidates 100]
        [--data ../shared/data] [--plot ann_text.png] [--threads N]

Sets: ``text`` is the sentence-embedding set of ``text_embeddings.py`` (all-MiniLM-L6-v2,
384-d, unit norm, built and cached on first use); ``siftsmall``, ``bigann10k`` and
``fmnistsmall`` come from ``--data``. A set whose data is absent is skipped with a message.
Ground truth: the exact top-10 by L2 (= by cosine for the unit-norm text vectors).

Per set, markdown tables of recall@10 (|top-10 returned intersect exact top-10| / 10, over
all queries), bytes per stored vector, queries per second and train + add seconds:

1. the swap: ``BioHashIndex(d, n)`` (library defaults; train, then add) against
   ``faiss.IndexLSH(d, n)`` (faiss defaults), n in ``--ns``;
2. equal bytes: against ``faiss.IndexLSH(d, 8 * code_size)``, code_size read from the index,
   and against the stronger ``baselines.lsh`` (IndexLSH on centred data, trained thresholds);
3. candidates + exact re-rank: ``--candidates`` candidates from each index (BioHash, and
   IndexLSH with the same code bytes), re-ranked by exact L2 distance to the float vectors;
4. what training does: the default (no epochs of the plasticity rule, the centring mean
   learned) against the untrained model (initial weights, nothing learned:
   ``epochs=0, center=False``), 3 epochs of the rule (``epochs=3, learning_rate=0.01``)
   and ``task="labels"`` (the rule's prototypes, 20 n-bit codes);
5. recall@10 against QPS, n in ``--plot-ns``: BioHash, IndexLSH at several nbits,
   ``IndexBinaryFlat`` / ``IndexBinaryHNSW`` / ``IndexBinaryIVF`` over the same BioHash codes
   (``sa_encode``; searched in Hamming order, not BioHash's weighted order),
   ``IndexHNSWFlat`` (float vectors, several efSearch) and ``IndexPQ`` with as many bytes as
   BioHash (M = code_size sub-quantizers of 8 bits, or the divisor of d nearest to it);
   drawn to ``--plot`` (one panel per set) when given;
6. learned codes at equal bytes (``--bytes``, 8 to 64; alone with ``--codes-only``):
   ``BioHashIndex(d, 4 * bytes)`` untrained (random rotations, nothing learned), with
   today's random rotations and the mean learned (``projection="random"``), with the
   subspace at a random rotation (``projection="subspace"``) and learned (the default),
   and learned with the length byte (``length_byte=True``: bits one byte shorter, so the
   same bytes per vector), against faiss's IndexLSH (rotation, centred data, trained thresholds), ``ITQ{bits},LSH``,
   RaBitQ (1 bit per dimension; ``PCAR{bits},RaBitQ`` where bytes < d / 8) and OPQ + PQ
   (4-bit fast-scan at 8 bytes, 8-bit codes otherwise), each at bytes x 8 bits of codes.

QPS: all queries searched at once, median of 3 timed searches after one warm-up search.
On a loaded shared machine ``--threads 1`` gives the steadiest QPS (with 2 busy cores,
OpenMP's waits made a 1.5 ms faiss search take 85 ms). Recall does not depend on threads.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import lsh as centred_lsh  # noqa: E402
from common import DATA, add_threads_option, apply_threads, machine, not_available  # noqa: E402
from report import markdown_table, median_seconds  # noqa: E402

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index.datasets import load_ann  # noqa: E402
from biohash_index.evaluation import recall_at_k  # noqa: E402

SETS = ("text", "siftsmall", "bigann10k", "fmnistsmall")
K = 10
HNSW_EF = (16, 64, 256)
IVF_NPROBE = (1, 4, 16)
VARIANTS = {"untrained (initial weights, no mean)": dict(epochs=0, center=False,
                                                         projection="random"),
            "random rotations, the mean learned (projection='random')":
                dict(projection="random"),
            "3 epochs of the rule (epochs=3, learning_rate=0.01)": dict(epochs=3,
                                                                         learning_rate=0.01),
            'task="labels"': dict(task="labels")}
BLOCK = 256   # queries re-ranked at once


def load_set(name: str, data: Path):
    """(xb, xq, gt) of a set, or None (with a message) when its data is absent."""
    if name == "text":
        import text_embeddings
        try:
            return text_embeddings.load(24000, 1000)
        except (ImportError, ValueError) as e:
            print(f"\ntext: skipped ({type(e).__name__}: {e})")
            return None
    if not (data / name).exists():
        print(f"\n{name}: skipped ({not_available(data / name)})")
        return None
    return load_ann(data / name)


class Result:
    """One measured index: bytes per vector, recall@10, QPS, build seconds."""

    def __init__(self, nbytes: int, recall: float, qps: float, build_s: float = 0.0):
        self.nbytes, self.recall, self.qps, self.build_s = nbytes, recall, qps, build_s

    def row(self, *labels) -> list:
        return [*labels, self.nbytes, f"{self.recall:.3f}", f"{self.qps:,.0f}",
                f"{self.build_s:.1f}"]


def build(index, xb) -> float:
    """Seconds to train index on xb and add xb."""
    t0 = time.perf_counter()
    index.train(xb)
    index.add(xb)
    return time.perf_counter() - t0


def warm_up(xb) -> None:
    """Compile (or load from numba's cache) BioHash's kernels outside the timings."""
    index = BioHashIndex(xb.shape[1], 8, epochs=1)
    index.add(xb[:500])
    index.search(xb[:10], K)
    index = BioHashIndex(xb.shape[1], 8, task="labels", epochs=1)
    index.add(xb[:500])
    index.search(xb[:10], K)


def measure(search, xq, gt, nbytes: int, build_s: float = 0.0) -> Result:
    """Recall@10 and QPS of ``search(xq) -> I`` (int (nq, >= 10))."""
    I = search(xq)   # the warm-up search
    qps = len(xq) / median_seconds(lambda: search(xq), repeat=3)
    return Result(nbytes, recall_at_k(I, gt, K), qps, build_s)


def knn(index, k: int = K):
    """search(xq) -> I of a faiss-API index."""
    return lambda xq: index.search(xq, k)[1]


def rerank(index, xb, n_candidates: int):
    """search(xq) -> I: n_candidates ids from index, the K nearest of them by exact L2."""
    norms = np.einsum("ij,ij->i", xb, xb)

    def nearest(xq, I):   # the K of candidates I (nq, C) nearest to xq (nq, d)
        Ic = np.where(I >= 0, I, 0)
        D = norms[Ic] - 2 * np.einsum("qcd,qd->qc", xb[Ic], xq)   # |x|^2 - 2 x.q
        D[I < 0] = np.inf
        order = np.argsort(D, axis=1, kind="stable")[:, :K]
        return np.take_along_axis(I, order, axis=1)

    def search(xq):
        I = index.search(xq, n_candidates)[1]
        return np.concatenate([nearest(xq[s:s + BLOCK], I[s:s + BLOCK])
                               for s in range(0, len(xq), BLOCK)])
    return search


def ratio(bio: Result, lsh: Result) -> str:
    return f"{bio.recall / lsh.recall:.2f}" if lsh.recall else "inf"


def set_search_param(index, attr: str | None, value) -> None:
    """efSearch of an HNSW index ("ef"), nprobe of an IVF index, or nothing (None)."""
    if attr == "ef":
        index.hnsw.efSearch = value
    elif attr == "nprobe":
        index.nprobe = value


def pq_m(d: int, nbytes: int) -> int:
    """The divisor of d nearest to nbytes (ties: the smaller one)."""
    divisors = [m for m in range(1, d + 1) if d % m == 0]
    return min(divisors, key=lambda m: (abs(m - nbytes), m))


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}\n" + markdown_table(header, rows))


COLUMNS = ["bytes/vector", "recall@10", "QPS", "train+add s"]


def run_set(name: str, xb, xq, gt, ns: list[int], plot_ns: list[int], n_candidates: int):
    """Print the tables of one set; returns {label: [(recall, qps), ...]} for the plot."""
    d = xb.shape[1]
    print(f"\n## {name}: {len(xb)} base vectors, d={d}, {len(xq)} queries")
    warm_up(xb)
    bio, bio_idx, lsh = {}, {}, {}   # by n: results, trained indexes; by nbits: IndexLSH

    def lsh_at(nbits: int) -> tuple[faiss.IndexLSH, Result]:
        """faiss.IndexLSH(d, nbits) and its result, built on first use."""
        if nbits not in lsh:
            index = faiss.IndexLSH(d, nbits)
            lsh[nbits] = (index, measure(knn(index), xq, gt, index.code_size, build(index, xb)))
        return lsh[nbits]

    rows = []
    for n in ns:
        index = BioHashIndex(d, n)
        build_s = build(index, xb)
        bio_idx[n] = index
        bio[n] = measure(knn(index), xq, gt, index.code_size, build_s)
        rows += [bio[n].row(n, f"BioHashIndex({d}, {n})"),
                 lsh_at(n)[1].row(n, f"IndexLSH({d}, {n})")]
    table(f"{name}, 1. the swap IndexLSH(d, n) -> BioHashIndex(d, n)", ["n", "index", *COLUMNS],
          rows)

    rows = []
    for n in ns:
        nbits = 8 * bio_idx[n].code_size
        r = lsh_at(nbits)[1]
        index = centred_lsh(d, nbits)
        c = measure(knn(index), xq, gt, r.nbytes, build(index, xb))
        rows += [bio[n].row(n, f"BioHashIndex({d}, {n})") + [""],
                 r.row(n, f"IndexLSH({d}, {nbits})") + [ratio(bio[n], r)],
                 c.row(n, f"IndexLSH({d}, {nbits}), centred, trained thresholds")
                 + [ratio(bio[n], c)]]
    table(f"{name}, 2. equal bytes", ["n", "index", *COLUMNS, "recall BioHash / LSH"], rows)

    rows = []
    for n in ns:
        nbits = 8 * bio_idx[n].code_size
        index, r0 = lsh_at(nbits)
        b = measure(rerank(bio_idx[n], xb, n_candidates), xq, gt, bio[n].nbytes, bio[n].build_s)
        r = measure(rerank(index, xb, n_candidates), xq, gt, r0.nbytes, r0.build_s)
        rows += [b.row(n, f"BioHashIndex({d}, {n}) + re-rank") + [""],
                 r.row(n, f"IndexLSH({d}, {nbits}) + re-rank") + [ratio(b, r)]]
    table(f"{name}, 3. {n_candidates} candidates re-ranked by exact L2 at equal bytes (the "
          "float vectors kept beside the codes are not counted in bytes/vector)",
          ["n", "index", *COLUMNS, "recall BioHash / LSH"], rows)

    rows = []
    for n in ns:
        rows.append(bio[n].row(n, "defaults (the mean learned)"))
        for label, options in VARIANTS.items():
            index = BioHashIndex(d, n, **options)
            r = measure(knn(index), xq, gt, index.code_size, build(index, xb))
            rows.append(r.row(n, label))
    table(f"{name}, 4. what training does", ["n", "BioHashIndex"] + COLUMNS, rows)

    return tradeoff(name, xb, xq, gt, bio, bio_idx, lsh_at, plot_ns)


def tradeoff(name, xb, xq, gt, bio, bio_idx, lsh_at, plot_ns):
    """Table 5 and the curves {label: [(recall, qps), ...]} of the recall / QPS picture."""
    d = xb.shape[1]
    curves: dict[str, list[tuple[float, float]]] = {}
    rows = []

    def point(label: str, param: str, r: Result) -> None:
        curves.setdefault(label, []).append((r.recall, r.qps))
        rows.append([label, param, *r.row()])

    for n in plot_ns:
        order = "weighted Hamming" if bio_idx[n].asymmetric else "Hamming"
        point(f"BioHashIndex ({order} order)", f"n={n}", bio[n])
    for nbits in sorted(set(plot_ns) | {8 * bio_idx[n].code_size for n in plot_ns}):
        point("IndexLSH", f"nbits={nbits}", lsh_at(nbits)[1])
    for n in plot_ns:   # faiss binary indexes over BioHash's codes, in Hamming order
        codes_b, codes_q = bio_idx[n].sa_encode(xb), bio_idx[n].sa_encode(xq)
        nbits, nbytes = 8 * codes_b.shape[1], codes_b.shape[1]
        nlist = int(round(np.sqrt(len(xb))))
        binary = {"IndexBinaryFlat": (faiss.IndexBinaryFlat(nbits), "exact", None, [None]),
                  "IndexBinaryHNSW": (faiss.IndexBinaryHNSW(nbits, 32), "efSearch", "ef", HNSW_EF),
                  f"IndexBinaryIVF{nlist}": (
                      faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(nbits), nbits, nlist),
                      "nprobe", "nprobe", IVF_NPROBE)}
        for kind, (index, param, attr, values) in binary.items():
            build_s = bio[n].build_s + build(index, codes_b)   # BioHash's training included
            for v in values:
                set_search_param(index, attr, v)
                point(f"BioHash n={n} codes, {kind} (Hamming order)",
                      param if v is None else f"{param}={v}",
                      measure(knn(index), codes_q, gt, nbytes, build_s))
    hnsw = faiss.IndexHNSWFlat(d, 32)
    build_s = build(hnsw, xb)
    for ef in HNSW_EF:
        hnsw.hnsw.efSearch = ef
        point("IndexHNSWFlat (float vectors)", f"efSearch={ef}",
              measure(knn(hnsw), xq, gt, 4 * d, build_s))
    for n in plot_ns:
        M = pq_m(d, bio_idx[n].code_size)
        pq = faiss.IndexPQ(d, M, 8)
        build_s = build(pq, xb)
        point("IndexPQ, BioHash's bytes", f"M={M} (BioHash n={n})",
              measure(knn(pq), xq, gt, pq.code_size, build_s))
    table(f"{name}, 5. recall@10 against QPS (one process)", ["index", "parameter"] + COLUMNS,
          rows)
    return curves


CODES = {"untrained (random rotations, no mean)": dict(epochs=0, center=False,
                                                       projection="random"),
         "random rotations, the mean learned": dict(projection="random"),
         "Hebbian subspace, random rotation": dict(projection="subspace"),
         "learned (Hebbian subspace + ITQ rotation; default)": {},
         "learned, length_byte=True (bits one byte shorter, then |x - mean|)":
             dict(length_byte=True)}


OPQ_NITER = 8


def anchors(d: int, nbytes: int) -> dict[str, str]:
    """faiss factory strings of the anchors at ``nbytes`` bytes of codes, d-dimensional."""
    nbits = 8 * nbytes
    out = {}
    if nbits <= d:
        out[f"ITQ{nbits},LSH"] = f"ITQ{nbits},LSH"
    out["RaBitQ" if nbits >= d else f"PCAR{nbits},RaBitQ"] = (
        "RaBitQ" if nbits >= d else f"PCAR{nbits},RaBitQ")
    return out


def opq_pq(d: int, nbytes: int) -> tuple[str, faiss.Index]:
    """(label, index): OPQ + PQ at ``nbytes`` bytes of codes: 4-bit fast-scan at 8 bytes,
    8-bit codes otherwise; OPQ_NITER iterations of OPQ (faiss's 50 take minutes here)."""
    M = 2 * nbytes if nbytes == 8 else nbytes
    D = M * max(1, round(d / M))
    opq = faiss.OPQMatrix(d, M, D)
    opq.niter = OPQ_NITER
    pq = faiss.IndexPQFastScan(D, M, 4) if nbytes == 8 else faiss.IndexPQ(D, M, 8)
    label = f"OPQ{M}_{D},PQ{M}{'x4fs' if nbytes == 8 else ''} (OPQ niter={OPQ_NITER})"
    return label, faiss.IndexPreTransform(opq, pq)


def codes_table(name: str, xb, xq, gt, byte_sizes: list[int], with_anchors: bool = True) -> None:
    """Table 6: recall@10 of BioHash's variants and the faiss anchors at equal bytes."""
    d = xb.shape[1]
    warm_up(xb)
    lengths = np.linalg.norm(xb - xb.mean(axis=0, dtype=np.float64), axis=1)
    print(f"\n{name}: coefficient of variation of |x - mean| over the base vectors "
          f"{lengths.std() / lengths.mean():.3f} (what length_byte=True encodes)")
    rows = []
    for nbytes in byte_sizes:
        for label, options in CODES.items():
            hash_length = 4 * (nbytes - options.get("length_byte", False))   # equal bytes
            index = BioHashIndex(d, hash_length, **options)
            r = measure(knn(index), xq, gt, index.code_size, build(index, xb))
            rows.append(r.row(nbytes, f"BioHashIndex({d}, {hash_length}), {label}"))
        if not with_anchors:
            continue
        index = centred_lsh(d, 8 * nbytes)
        r = measure(knn(index), xq, gt, nbytes, build(index, xb))
        rows.append(r.row(nbytes, f"IndexLSH({d}, {8 * nbytes}), centred, trained thresholds"))
        for label, factory in anchors(d, nbytes).items():
            index = faiss.index_factory(d, factory)
            r = measure(knn(index), xq, gt, index.sa_code_size(), build(index, xb))
            rows.append(r.row(nbytes, label))
        label, index = opq_pq(d, nbytes)
        r = measure(knn(index), xq, gt, index.sa_code_size(), build(index, xb))
        rows.append(r.row(nbytes, label))
    table(f"{name}, 6. learned codes at equal bytes (bytes/vector: faiss's sa_code_size, "
          "RaBitQ's per-vector factors included)", ["bytes", "index", *COLUMNS], rows)


def plot(path: str, panels: dict[str, dict[str, list]]) -> bool:
    """One recall / QPS panel per set; returns whether matplotlib was there to draw it."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cols = min(2, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 7 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (name, curves) in zip(axes.flat, panels.items()):
        for i, (label, points) in enumerate(curves.items()):
            x, y = zip(*sorted(points))
            ax.plot(x, y, marker="o", color=f"C{i % 10}", label=label,
                    linestyle="-" if i < 10 else "--")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--ns", default="16,32,64,128,256", help="hash lengths n (IndexLSH nbits)")
    ap.add_argument("--plot-ns", default="32,128",
                    help="n of the recall / QPS run (a subset of --ns)")
    ap.add_argument("--candidates", type=int, default=100, help="candidates re-ranked exactly")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--plot", default=None, help="PNG file of the recall / QPS picture")
    ap.add_argument("--bytes", default="8,16,32,64", help="code bytes of table 6")
    ap.add_argument("--codes-only", action="store_true", help="print table 6 only")
    ap.add_argument("--no-anchors", action="store_true", help="table 6 without faiss's rows")
    add_threads_option(ap)
    args = ap.parse_args(argv)
    apply_threads(args.threads)
    ns = [int(n) for n in args.ns.split(",")]
    plot_ns = [int(n) for n in args.plot_ns.split(",")]
    if not set(plot_ns) <= set(ns):
        ap.error(f"--plot-ns {plot_ns} must be a subset of --ns {ns}")
    print(machine())
    panels = {}
    for name in args.sets.split(","):
        data = load_set(name, Path(args.data))
        if data is None:
            continue
        if not args.codes_only:
            panels[name] = run_set(name, *data, ns, plot_ns, args.candidates)
        codes_table(name, *data, [int(b) for b in args.bytes.split(",")], not args.no_anchors)
    if args.plot and panels:
        if plot(args.plot, panels):
            print(f"\nplot written to {args.plot}")
        else:
            print("\nno plot: matplotlib is not installed")


if __name__ == "__main__":
    main()
