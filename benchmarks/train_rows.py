"""How many training rows a model needs: quality of a model trained on n rows against one
trained on all of them, the measurement behind ``training_rows_needed`` (biohash_index/_model.py).

Nearest neighbours (``task="neighbors"``, the defaults): recall@10 on siftsmall, bigann10k
and fmnistsmall of ``BioHashIndex(d, k)`` trained on n random base rows, then filled with the
whole base. Retrieval by label (``task="labels"``): mAP@All on MNIST-10k (BENCHMARKS.md's
protocol) of a model trained on n random database images. Each cell is the mean over
``--seeds`` draws of the n rows; the last column is the model trained on everything.

    python benchmarks/train_rows.py [--sets siftsmall,bigann10k,fmnistsmall,mnist]
        [--ks 16,64] [--seeds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DATA, add_threads_option, apply_threads, machine, print_table,  # noqa: E402
                    sets_present)

from biohash_index import BioHashIndex, training_rows_needed  # noqa: E402
from biohash_index.datasets import label_split, load_ann, load_mnist  # noqa: E402
from biohash_index.evaluation import mean_average_precision, recall_at_k  # noqa: E402

ROWS = (1, 10, 30, 100, 200, 300, 1000, 2000, 3000)


def quality(task: str, data, k: int, n: int | None, seed: int) -> float:
    """Recall@10 ("neighbors") or mAP@All ("labels") of a model trained on n random rows of
    the base (None: all of them)."""
    xb, xq, truth = data
    rows = xb if n is None else xb[np.random.default_rng(seed).choice(len(xb), n, replace=False)]
    index = BioHashIndex(xb.shape[1], k, task=task)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the warning this measurement sets the rule of
        index.train(rows)
    index.add(xb)
    if task == "neighbors":
        return recall_at_k(index.search(xq, 10)[1], truth, 10)
    yb, yq = truth
    return mean_average_precision(index.search(xq, len(xb))[1], yb, yq)


def load(name: str):
    if name == "mnist":
        x, y = load_mnist(DATA / "mnist")
        q, db = label_split(y, 100)
        return "labels", (x[db], x[q], (y[db], y[q]))
    return "neighbors", load_ann(DATA / name)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="siftsmall,bigann10k,fmnistsmall,mnist")
    ap.add_argument("--ks", default="16,64")
    ap.add_argument("--seeds", type=int, default=3)
    add_threads_option(ap)
    args = ap.parse_args(argv)
    apply_threads(args.threads)
    print(machine())
    for name in sets_present(args.sets):
        task, data = load(name)
        metric = "recall@10" if task == "neighbors" else "mAP@All"
        print(f"\n{name}, task={task!r}: {metric} of a model trained on n rows")
        sizes = [n for n in ROWS if n < len(data[0])]
        rows = []
        for k in (int(k) for k in args.ks.split(",")):
            full = quality(task, data, k, None, 0)
            cells = [np.mean([quality(task, data, k, n, s) for s in range(args.seeds)])
                     for n in sizes]
            needed = training_rows_needed(BioHashIndex(data[0].shape[1], k, task=task).params)
            rows.append([k, needed, *[f"{c:.3f} ({c / full:.2f})" for c in cells],
                         f"{full:.3f}"])
        print_table(["k", "rows needed", *[f"n={n}" for n in sizes], f"all {len(data[0])}"],
                    rows)


if __name__ == "__main__":
    main()
