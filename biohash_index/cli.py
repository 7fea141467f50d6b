"""Command line: ``biohash-index demo`` (also ``python -m biohash_index``)."""
from __future__ import annotations

import argparse
import logging
import sys
import time

import faiss
import numpy as np

from .datasets import label_split, load_digits, load_mnist
from .evaluation import mean_average_precision
from .index import BioHashIndex


def demo(args) -> int:
    """Train on labelled data, search it and print mAP@All next to faiss IndexLSH."""
    if args.mnist:
        x, y = load_mnist(args.mnist)
        name = f"MNIST test set from {args.mnist}"
        per_class = 100
    else:
        x, y = load_digits()
        name = "scikit-learn digits (1,797 8x8 images)"
        per_class = 20
    q, db = label_split(y, per_class)
    xq, xb = x[q], x[db]
    print(f"data: {name}; {len(q)} queries, {len(db)} database/training vectors, d={x.shape[1]}")
    print(f"{'k':>4} {'BioHash mAP%':>13} {'IndexLSH mAP%':>14} {'train s':>8}")
    for k in args.hash_lengths:
        index = BioHashIndex(x.shape[1], k, seed=args.seed)
        t = time.perf_counter()
        index.train(xb)
        t_train = time.perf_counter() - t
        index.add(xb)
        _, I = index.search(xq, len(xb))
        ours = mean_average_precision(I, y[db], y[q])
        lsh = faiss.IndexLSH(x.shape[1], k, True, True)
        mean = xb.mean(axis=0)
        lsh.train(xb - mean)
        lsh.add(xb - mean)
        _, I = lsh.search(xq - mean, len(xb))
        base = mean_average_precision(I, y[db], y[q])
        print(f"{k:>4} {100 * ours:>13.2f} {100 * base:>14.2f} {t_train:>8.2f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biohash-index", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train, search and compare with faiss IndexLSH")
    p.add_argument("--mnist", metavar="DIR", help="folder with the MNIST t10k IDX files "
                   "(default: scikit-learn's bundled digits)")
    p.add_argument("--hash-lengths", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as e:
        print(f"biohash-index: error: {e}", file=sys.stderr)
        return 1
