"""What a decoded code is worth: ``reconstruct`` / ``sa_decode`` against the vectors encoded,
next to faiss ``IndexLSH``'s decoding at the same code bytes.

A BioHash code keeps the direction of ``x - mean`` (scaling it changes no unit's rank), so
the decoded vector is the mean plus a unit vector (``BioHashModel.decode``). For each stored
vector x and its decoded vector y, with the index's mean m (IndexLSH: the mean of its
decoded vectors and of the data):
- cos: the cosine of y - m to x - m, averaged;
- self@1: the share of the first 2,000 vectors whose decoded vector is nearest, by that
  angle, to x itself among all the stored vectors;
- round trip: the share of codes that encoding the decoded vector gives back.

    python benchmarks/decode.py [--sets siftsmall,bigann10k,fmnistsmall,mnist] [--ks 16,64]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (DATA, add_threads_option, apply_threads, machine, print_table,  # noqa: E402
                    sets_present)

from biohash_index import BioHashIndex  # noqa: E402
from biohash_index.datasets import load_ann, load_mnist  # noqa: E402

N_SELF = 2000


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def scores(x: np.ndarray, y: np.ndarray, x_mean: np.ndarray, y_mean: np.ndarray):
    """(cos, self@1) of decoded y (n, d) against x (n, d), both less their means."""
    rx, ry = unit_rows(x - x_mean), unit_rows(y - y_mean)
    n = min(N_SELF, len(x))
    self_at_1 = float(np.mean((ry[:n] @ rx.T).argmax(axis=1) == np.arange(n)))
    return float(np.mean(np.sum(rx * ry, axis=1))), self_at_1


def biohash_row(x: np.ndarray, k: int, task: str) -> list:
    index = BioHashIndex(x.shape[1], k, task=task)
    index.train(x)
    index.add(x)
    y = index.reconstruct_n(0, index.ntotal)
    codes = index.sa_encode(x)
    cos, self_at_1 = scores(x, y, index.model.mean_, index.model.mean_)
    round_trip = float(np.mean((index.sa_encode(y) == codes).all(axis=1)))
    return [f"BioHashIndex(d, {k}, task={task!r})", index.code_size, cos, self_at_1, round_trip]


def lsh_row(x: np.ndarray, nbytes: int) -> list:
    lsh = faiss.IndexLSH(x.shape[1], 8 * nbytes)
    lsh.train(x)
    lsh.add(x)
    y = lsh.reconstruct_n(0, lsh.ntotal)
    cos, self_at_1 = scores(x, y, x.mean(axis=0), y.mean(axis=0))
    round_trip = float(np.mean((lsh.sa_encode(y) == lsh.sa_encode(x)).all(axis=1)))
    return [f"IndexLSH(d, {8 * nbytes})", nbytes, cos, self_at_1, round_trip]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default="siftsmall,bigann10k,fmnistsmall,mnist")
    ap.add_argument("--ks", default="16,64")
    add_threads_option(ap)
    args = ap.parse_args(argv)
    apply_threads(args.threads)
    print(machine())
    for name in sets_present(args.sets):
        x = load_mnist(DATA / name)[0] if name == "mnist" else load_ann(DATA / name)[0]
        tasks = ("neighbors", "labels") if name == "mnist" else ("neighbors",)
        rows = []
        for task in tasks:
            for k in (int(k) for k in args.ks.split(",")):
                rows.append(biohash_row(x, k, task))
                rows.append(lsh_row(x, rows[-1][1]))
        print(f"\n{name}: {len(x)} vectors of d = {x.shape[1]}")
        print_table(["index", "code bytes", "cos", "self@1", "round trip"], rows)


if __name__ == "__main__":
    main()
