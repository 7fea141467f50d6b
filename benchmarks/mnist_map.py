"""MNIST-10k mAP@All, the protocol of BENCHMARKS.md: BioHash with its default
hyperparameters against faiss LSH, faiss ITQ and FlyHash, with the paper's figures beside.

Run from the repository root (the data folder holds the MNIST t10k IDX files):

    python benchmarks/mnist_map.py [--data ../shared/data/mnist] [--split-seed 1]
        [--ks 2,4,8,16,32,64] [--methods BioHash,LSH,ITQ,FlyHash] [--plot mnist_map.png]

The ranking is exactly what ``search(xq, n_database)`` returns: Hamming ties keep the
order the index gives them (no labels or float vectors break them).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baselines import METHODS, make_index  # noqa: E402
from data_dir import DATA, not_available  # noqa: E402
from report import markdown_table, plot_lines  # noqa: E402

from biohash_index.datasets import label_split, load_mnist  # noqa: E402
from biohash_index.evaluation import fit, mean_average_precision  # noqa: E402

# Ryali et al., ICML 2020, Table 1 (mAP@All %, MNIST, 69k database), by hash length k
PAPER = {
    "LSH": {2: 12.45, 4: 13.77, 8: 18.07, 16: 20.30, 32: 26.20, 64: 32.30},
    "ITQ": {2: 21.94, 4: 28.45, 8: 38.44, 16: 41.23, 32: 43.55, 64: 44.92},
    "FlyHash": {2: 18.94, 4: 20.02, 8: 24.24, 16: 26.29, 32: 32.30, 64: 38.41},
    "BioHash": {2: 44.38, 4: 49.32, 8: 53.42, 16: 54.92, 32: 55.48},
}


def evaluate(method: str, k: int, xq, xb, yq, yb) -> tuple[float, float]:
    """(mAP@All in %, training seconds) of one method at hash length k; xb is both the
    training set and the database."""
    index = make_index(method, xb.shape[1], k)
    train_s = fit(index, xb, xb)
    _, I = index.search(xq, len(xb))
    return 100 * mean_average_precision(I, yb, yq), train_s


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA / "mnist"))
    ap.add_argument("--split-seed", type=int, default=None,
                    help="draw the 100 queries per digit at random with this seed "
                         "(default: the first 100 of each digit, as BENCHMARKS.md)")
    ap.add_argument("--ks", default="2,4,8,16,32,64")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--plot", default=None, help="PNG file for the plot (needs matplotlib)")
    args = ap.parse_args(argv)
    ks = [int(k) for k in args.ks.split(",")]
    methods = args.methods.split(",")

    if not Path(args.data).exists():
        sys.exit(not_available(args.data))
    x, y = load_mnist(args.data)
    q, db = label_split(y, 100, args.split_seed)
    xq, xb, yq, yb = x[q], x[db], y[q], y[db]
    split = "first 100 per digit" if args.split_seed is None else f"seed {args.split_seed}"
    print(f"MNIST-10k: {len(xq)} queries ({split}), {len(xb)} database = training vectors")

    res = {m: {k: evaluate(m, k, xq, xb, yq, yb) for k in ks} for m in methods}

    header = ["method"] + [f"k={k}" for k in ks]
    rows = []
    for m in methods:
        rows.append([f"{m} (ours)" if m == "BioHash" else m] + [res[m][k][0] for k in ks])
        if m in PAPER:
            rows.append([f"{m}, paper"] + [PAPER[m].get(k, "-") for k in ks])
    print("\nmAP@All (%)\n" + markdown_table(header, rows))
    print("\ntraining time (s)\n" + markdown_table(
        header, [[m] + [res[m][k][1] for k in ks] for m in methods]))

    if args.plot:
        series = {m: (ks, [res[m][k][0] for k in ks]) for m in methods}
        series.update({f"{m}, paper": (sorted(PAPER[m]), [PAPER[m][k] for k in sorted(PAPER[m])])
                       for m in methods if m in PAPER})
        if plot_lines(args.plot, series, "hash length k", "mAP@All (%)",
                      f"MNIST-10k, queries: {split}"):
            print(f"\nplot written to {args.plot}")
        else:
            print("\nno plot: matplotlib is not installed")


if __name__ == "__main__":
    main()
