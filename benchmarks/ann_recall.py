"""ANN recall@10 on siftsmall, bigann10k and fmnistsmall: BioHash (default
hyperparameters) against faiss ``IndexLSH`` at the same hash length and at the same code size.

Run from the repository root:

    python benchmarks/ann_recall.py [--data ../shared/data] [--ks 16,32,64]
        [--sets siftsmall,bigann10k,fmnistsmall] [--spread S] [--plot ann_recall.png]

Each index is trained on and holds the base vectors; recall@10 = |top-10 returned
intersect exact top-10| / 10, averaged over the queries; QPS is the median of 3 timed
searches of all queries (10 results each).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import code_size, lsh  # noqa: E402
from report import markdown_table, median_seconds, plot_lines  # noqa: E402

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index.datasets import load_ann  # noqa: E402
from biohash_index.evaluation import recall_at_k  # noqa: E402

SETS = ("siftsmall", "bigann10k", "fmnistsmall")


def measure(label: str, nbits: int, index, xb, xq, gt) -> list:
    """Row [method, bits, bytes/vector, recall@10, QPS, train s] of one index."""
    t0 = time.perf_counter()
    index.train(xb)
    train_s = time.perf_counter() - t0
    index.add(xb)
    _, I = index.search(xq, 10)
    qps = len(xq) / median_seconds(lambda: index.search(xq, 10))
    return [label, nbits, code_size(index), f"{recall_at_k(I, gt, 10):.3f}", f"{qps:,.0f}",
            train_s]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--ks", default="16,32,64", help="BioHash hash lengths")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--spread", type=float, default=None,
                    help="BioHash's spread (default: the library's)")
    ap.add_argument("--plot", default=None, help="PNG file for the plot (needs matplotlib)")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    hyper = {} if args.spread is None else {"spread": args.spread}

    series = {}
    for name in args.sets.split(","):
        xb, xq, gt = load_ann(Path(args.data) / name)
        d = xb.shape[1]
        rows = []
        for k in ks:
            bio = measure(f"BioHash k={k}", k, BioHashIndex(d, k, **hyper), xb, xq, gt)
            nbits = 8 * bio[2]
            rows += [bio,
                     measure("IndexLSH, same k", k, lsh(d, k), xb, xq, gt),
                     measure("IndexLSH, same bytes", nbits, lsh(d, nbits), xb, xq, gt)]
        print(f"\n{name}: {len(xb)} base vectors, d={d}, {len(xq)} queries\n" + markdown_table(
            ["method", "bits", "bytes/vector", "recall@10", "QPS", "train s"], rows))
        for offset, label in ((0, "BioHash"), (1, "LSH same k"), (2, "LSH same bytes")):
            recalls = [float(rows[3 * i + offset][3]) for i in range(len(ks))]
            series[f"{name}: {label}"] = (ks, recalls)

    if args.plot:
        if plot_lines(args.plot, series, "BioHash hash length k", "recall@10",
                      "ANN recall@10 (LSH at the same k / the same code size)"):
            print(f"\nplot written to {args.plot}")
        else:
            print("\nno plot: matplotlib is not installed")


if __name__ == "__main__":
    main()
